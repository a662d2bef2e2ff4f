"""Configuration is data: profiles, methods and overrides resolve, typos fail with the key named."""

import dataclasses

import pytest

from avs_lib.config import config_from_dict, save_config, to_dict
from avs_lib.configtools import ConfigError, parse_assignment
from avs_lib.datatools.profiles import METHODS, PROFILES, build_config


def test_every_profile_and_method_resolves():
    for profile in PROFILES:
        for method in METHODS:
            cfg = build_config(profile, method)
            assert cfg.name == method


def test_set_override_reaches_the_nested_field():
    cfg = build_config(
        "cpu", overrides=["loss.crop_ce=1.0", "optim.lr=0.002", "model.tpavi_stages=[0, 2]"]
    )
    assert cfg.loss.crop_ce == 1.0 and cfg.optim.lr == 0.002 and cfg.model.tpavi_stages == (0, 2)


def test_exponent_without_a_dot_is_a_number():
    # PyYAML reads `2e-3` as a string (YAML 1.1); `--set optim.lr=2e-3` must still work.
    cfg = build_config("cpu", overrides=["optim.lr=2e-3", "loss.counterfactual=1e0"])
    assert cfg.optim.lr == pytest.approx(0.002) and cfg.loss.counterfactual == 1.0
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        build_config("cpu", overrides=["optim.lr=fast"])


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="loss.crop_cee"):
        build_config("cpu", overrides=["loss.crop_cee=1"])


def test_bad_value_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="optim.batch_size"):
        build_config("cpu", overrides=["optim.batch_size=four"])


def test_invalid_value_is_an_error_naming_the_section():
    with pytest.raises(ConfigError, match="optim"):
        build_config("cpu", overrides=["optim.lr=-1"])
    with pytest.raises(ConfigError, match="loss"):
        build_config("cpu", overrides=["loss.crop_ce=-2"])


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="smoke"):
        build_config("laptop")


def test_paper_profile_is_the_official_recipe():
    cfg = build_config("paper")
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.epochs) == (
        "adam",
        1e-4,
        4,
        15,
    )
    assert cfg.model.backbone == "resnet50" and cfg.model.tpavi_stages == (0, 1, 2, 3)
    assert cfg.model.audio_encoder == "vggish" and cfg.model.freeze_audio


def test_thesis_method_turns_on_the_three_crop_losses():
    cfg = build_config("paper", "thesis")
    assert (cfg.loss.crop_ce, cfg.loss.crop_pairwise, cfg.loss.audio_crop_cosine) == (1.0, 1.0, 1.0)


def test_cosine_audio_defaults_to_tpavis_audio_so_no_existing_run_changes():
    for method in ("thesis", "thesis_shared_trainable", "thesis_trained"):
        assert build_config("cpu", method).loss.cosine_audio == "tpavi"


def test_unknown_cosine_audio_is_one_line_naming_the_key_and_the_valid_values():
    with pytest.raises(ConfigError, match=r"cosine_audio must be one of \('tpavi', 'frozen'\), got 'vggish'") as info:
        build_config("cpu", overrides=["loss.cosine_audio=vggish"])
    assert "\n" not in str(info.value)


def test_thesis_as_written_and_both_readings_of_loss_c_build():
    weights = {"model": {"resnet_weights": "visual.pth", "crop_weights": "visual.pth", "freeze_backbone": True}}

    def built(method):  # as the cpu profile starts a run: pretrained encoders, frozen unless the method says
        return build_config("cpu", method, weights=weights)

    literal, trained, control = built("thesis_literal_c"), built("thesis_trained"), built("tpavi_trained")
    assert literal.loss.cosine_audio == "frozen" and literal.model.freeze_backbone
    assert literal.model == built("thesis").model  # thesis with only Loss C's audio changed
    assert literal.loss == dataclasses.replace(built("thesis").loss, cosine_audio="frozen")
    assert not trained.model.freeze_backbone and trained.model.crop_trunk == "separate"
    assert (trained.loss.crop_ce, trained.loss.crop_pairwise, trained.loss.audio_crop_cosine) == (1.0, 1.0, 1.0)
    assert not control.model.freeze_backbone and not control.loss.crop_losses
    literal_trained = built("thesis_trained_literal_c")
    assert literal_trained.loss.cosine_audio == "frozen" and not literal_trained.model.freeze_backbone


def test_one_override_sets_the_crop_loss_weight_of_a_sweep():
    sweep = ["loss.crop_ce=0.1", "loss.crop_pairwise=0.1", "loss.audio_crop_cosine=0.1"]
    loss = build_config("cpu", "thesis_trained", overrides=sweep).loss
    assert (loss.crop_ce, loss.crop_pairwise, loss.audio_crop_cosine, loss.avs_bce) == (0.1, 0.1, 0.1, 1.0)


def test_yaml_file_then_overrides_win_in_order(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("optim:\n  lr: 0.01\nseed: 3\n")
    cfg = build_config("smoke", yaml_file=path, overrides=["optim.lr=0.02"])
    assert cfg.optim.lr == 0.02 and cfg.seed == 3


def test_saved_config_rebuilds_the_same_experiment(tmp_path):
    import yaml

    cfg = build_config("cpu", "thesis", overrides=["seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == cfg
    assert to_dict(config_from_dict(to_dict(cfg))) == to_dict(cfg)


def test_assignment_needs_an_equals_sign():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_assignment("loss.crop_ce")


def test_the_longer_budget_runs_double_the_epochs_and_meet_their_controls_at_the_ablation_seeds():
    from avs_lib.report.grids import CONTROLS, GRIDS
    grid = GRIDS["cpu"]
    for method in grid.longer:
        control = CONTROLS[method]
        assert build_config("cpu", method).optim.epochs == 2 * build_config("cpu", control).optim.epochs
        assert build_config("cpu", method).loss == build_config("cpu", control).loss
        assert {s for m, s in grid.pairs if m == method} == set(grid.ablation_seeds)
        assert set(grid.ablation_seeds) <= {s for m, s in grid.pairs if m == control}


def test_companion_profiles_share_the_cpu_recipe_on_data_of_their_own():
    from avs_lib.datatools.profiles import get_profile
    from avs_lib.report.grids import COMPANIONS, GRIDS
    cpu = get_profile("cpu")
    for name in COMPANIONS["cpu"]:
        companion = get_profile(name)
        assert companion.overrides == cpu.overrides and companion.data_root != cpu.data_root
        assert companion.synthetic.videos_per_split == cpu.synthetic.videos_per_split
        assert name in GRIDS and name not in COMPANIONS
