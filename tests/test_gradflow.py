"""Which loss term reaches which parameters, and the crop classifier's health in the logs."""

import json
import math

import pytest
import torch
import torchvision
import yaml

from avs_lib.datatools.profiles import build_config
from avs_lib.engine.system import AVSSystem
from avs_lib.report.gradflow import (
    crop_health_table,
    first_batch,
    gradient_flow,
    gradient_flow_table,
    run_crop_health,
)

CROP_TERMS = ["crop_ce", "crop_pairwise", "audio_crop_cosine"]


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A resnet18 state_dict in torchvision's names, as a stand-in for ImageNet weights."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return str(path)


def _config(tiny_synth, method, **model):
    return build_config("smoke", method, overrides={"data": {"root": str(tiny_synth)}, "model": model})


def _flow(cfg):
    torch.manual_seed(0)
    system = AVSSystem(cfg)
    return gradient_flow(system, first_batch(cfg)), system


def test_separate_trunk_keeps_crop_losses_a_and_b_off_the_segmentation_model(tiny_synth):
    table, _ = _flow(_config(tiny_synth, "thesis"))
    assert list(table.index) == ["avs_bce", *CROP_TERMS]
    for term in ("crop_ce", "crop_pairwise"):
        assert table.loc[term, "crop_network"] > 0
        assert (table.loc[term, ["avs_encoder", "fusion", "decoder", "audio_encoder"]] == 0).all()
    cosine = table.loc["audio_crop_cosine"]
    assert cosine["fusion"] > 0 and cosine["audio_encoder"] > 0 and cosine["crop_network"] > 0
    assert cosine["avs_encoder"] == 0 and cosine["decoder"] == 0
    assert (table.loc["avs_bce", ["avs_encoder", "fusion", "decoder"]] > 0).all()
    assert table.loc["avs_bce", "crop_network"] == 0


def test_segmentation_bce_reaches_the_audio_encoder_only_through_an_open_fusion_gate(tiny_synth):
    closed, _ = _flow(_config(tiny_synth, "tpavi"))  # official start: TPAVI's residual branch scaled by 0
    assert closed.loc["avs_bce", "audio_encoder"] == 0
    opened, _ = _flow(_config(tiny_synth, "tpavi", fusion_gate_init=1.0))
    assert opened.loc["avs_bce", "audio_encoder"] > 0


def test_cosine_reaches_tpavis_audio_alignment(tiny_synth):
    cfg = _config(tiny_synth, "thesis")
    torch.manual_seed(0)
    groups = {"align_channel": ("model.tpavi_b1.align_channel.",), "attention": ("model.tpavi_b1.theta.",)}
    table = gradient_flow(AVSSystem(cfg), first_batch(cfg), terms=["audio_crop_cosine"], groups=groups)
    assert table.loc["audio_crop_cosine", "align_channel"] > 0
    assert table.loc["audio_crop_cosine", "attention"] == 0  # the cosine reads the aligned audio only


def test_a_shared_trainable_trunk_lets_crop_ce_reach_the_avs_encoder(tiny_synth):
    table, _ = _flow(_config(tiny_synth, "thesis_shared"))
    for term in ("crop_ce", "crop_pairwise"):
        assert table.loc[term, "avs_encoder"] > 0
        assert table.loc[term, "decoder"] == 0 and table.loc[term, "fusion"] == 0


def test_a_frozen_shared_trunk_stops_crop_losses_a_and_b_before_the_avs_model(tiny_synth, resnet_file):
    cfg = _config(tiny_synth, "thesis_shared", resnet_weights=resnet_file, freeze_backbone=True)
    table, _ = _flow(cfg)
    for term in ("crop_ce", "crop_pairwise"):
        assert (table.loc[term, ["avs_encoder", "fusion", "decoder", "audio_encoder"]] == 0).all()
        assert table.loc[term, "crop_network"] > 0  # only the crop head's own layers learn
    assert table.loc["avs_bce", "avs_encoder"] == 0  # frozen: no gradient for any term


SEGMENTATION_MODEL = ["avs_encoder", "fusion", "decoder"]


@pytest.mark.parametrize("frozen_encoder", [True, False], ids=["frozen_avs_encoder", "trained_avs_encoder"])
def test_literal_cosine_leaves_every_crop_loss_off_the_segmentation_model(tiny_synth, resnet_file, frozen_encoder):
    """Loss C read literally (`loss.cosine_audio="frozen"`, methods thesis_literal_c and
    thesis_trained_literal_c): the crops are compared with the audio encoder's frozen embedding,
    so with a separate crop trunk A, B and C can change only the crop network (its trunk, heads and
    its projection to the audio width): none of them can change what the segmentation model
    predicts, whether its encoder is frozen or trained. Today's C (TPAVI's aligned audio) is the
    one route to the segmentation model: it reaches TPAVI's audio projection (and the audio encoder
    when that is trained)."""
    method = "thesis_literal_c" if frozen_encoder else "thesis_trained_literal_c"
    start = {"resnet_weights": resnet_file, "freeze_backbone": True} if frozen_encoder else {}
    literal, _ = _flow(_config(tiny_synth, method, **start))
    for term in CROP_TERMS:
        assert (literal.loc[term, [*SEGMENTATION_MODEL, "audio_encoder"]] == 0).all(), term
        assert literal.loc[term, "crop_network"] > 0, term
    assert (literal.loc["avs_bce", ["fusion", "decoder"]] > 0).all()  # the model itself still learns
    today, _ = _flow(_config(tiny_synth, "thesis", **start))  # the same wiring, today's C
    assert today.loc["audio_crop_cosine", "fusion"] > 0 and today.loc["audio_crop_cosine", "audio_encoder"] > 0


def test_literal_cosine_trains_its_projection_not_tpavis(tiny_synth):
    cfg = _config(tiny_synth, "thesis_literal_c")
    torch.manual_seed(0)
    system = AVSSystem(cfg)
    groups = {"align_channel": ("model.tpavi_b1.align_channel.",), "crop_to_audio": ("crop_to_audio.",)}
    table = gradient_flow(system, first_batch(cfg), terms=["audio_crop_cosine"], groups=groups)
    assert table.loc["audio_crop_cosine", "align_channel"] == 0
    assert table.loc["audio_crop_cosine", "crop_to_audio"] > 0
    assert system.crop_to_audio.out_features == 128  # the audio encoder's width, not TPAVI's channel


def test_thesis_as_written_reaches_the_segmentation_model_only_through_todays_cosine(tiny_synth):
    """thesis_trained (the write-up's training: AVS encoder trained beside a separate crop trunk):
    A and B reach only the crop trunk; C reaches TPAVI, so C is the only crop loss that can change
    the segmentation model. Its control tpavi_trained trains the same encoder with no crop loss."""
    table = gradient_flow_table({m: _config(tiny_synth, m) for m in ("thesis_trained", "tpavi_trained")})
    thesis = table.loc["thesis_trained"]
    for term in ("crop_ce", "crop_pairwise"):
        assert thesis.loc[term, "crop_network"] > 0
        assert (thesis.loc[term, [*SEGMENTATION_MODEL, "audio_encoder"]] == 0).all()
    assert thesis.loc["audio_crop_cosine", "fusion"] > 0
    assert thesis.loc["audio_crop_cosine", "avs_encoder"] == 0 and thesis.loc["audio_crop_cosine", "decoder"] == 0
    control = table.loc["tpavi_trained"]
    assert list(control.index) == ["avs_bce"] and control.loc["avs_bce", "avs_encoder"] > 0
    assert thesis.loc["avs_bce", "avs_encoder"] > 0  # trained in both, unlike thesis in the cpu profile


def test_counterfactual_term_reaches_fusion_decoder_and_audio(tiny_synth):
    table, _ = _flow(_config(tiny_synth, "counterfactual", fusion_gate_init=1.0))
    row = table.loc["counterfactual"]
    assert row["fusion"] > 0 and row["decoder"] > 0 and row["audio_encoder"] > 0 and row["crop_network"] == 0


def test_gradient_flow_leaves_the_system_as_it_was(tiny_synth):
    cfg = _config(tiny_synth, "thesis")
    torch.manual_seed(0)
    system = AVSSystem(cfg).train()
    before = {k: v.clone() for k, v in system.state_dict().items()}
    gradient_flow(system, first_batch(cfg))
    assert system.training
    assert all(torch.equal(before[k], v) for k, v in system.state_dict().items())
    assert all(p.grad is None for p in system.parameters())


def test_gradient_flow_table_stacks_methods(tiny_synth):
    configs = {m: _config(tiny_synth, m) for m in ("tpavi", "thesis")}
    table = gradient_flow_table(configs)
    assert list(table.index) == [("tpavi", "avs_bce"), ("thesis", "avs_bce"), *[("thesis", t) for t in CROP_TERMS]]
    assert table.loc[("tpavi", "avs_bce"), "crop_network"] == 0.0


def test_unknown_term_is_an_error_listing_the_valid_ones(tiny_synth):
    cfg = _config(tiny_synth, "tpavi")
    with pytest.raises(ValueError, match="valid terms: avs_bce"):
        gradient_flow(AVSSystem(cfg), first_batch(cfg), terms=["loss2"])


def _fake_run(run_dir, name, crop_ces):
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": 0}))
    steps = [{"epoch": e, "step": i, "global_step": 3 * e + i, "crop_ce": ce}
             for e, epoch in enumerate(crop_ces) for i, ce in enumerate(epoch)]
    (run_dir / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    epochs = [{"epoch": e, "train_crop_ce": sum(epoch) / len(epoch)} for e, epoch in enumerate(crop_ces)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))


def test_run_crop_health_reads_the_last_epoch_of_the_logs(tmp_path):
    ln23 = math.log(23)
    _fake_run(tmp_path / "thesis_seed0", "thesis", [[2.0, 1.5, 1.0], [ln23, ln23, 1.0]])
    health = run_crop_health(tmp_path / "thesis_seed0")
    assert health["method"] == "thesis" and health["epoch"] == 1
    assert health["final_crop_ce"] == pytest.approx((2 * ln23 + 1.0) / 3)
    assert health["dead_step_fraction"] == pytest.approx(2 / 3) and not health["at_chance"]


def test_crop_health_table_skips_runs_without_crop_ce_and_flags_a_stuck_one(tmp_path):
    ln23 = math.log(23)
    _fake_run(tmp_path / "thesis_seed0", "thesis", [[ln23, ln23]])
    (tmp_path / "tpavi_seed0").mkdir()
    (tmp_path / "tpavi_seed0" / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "train_avs_bce": 0.3}) + "\n")
    table = crop_health_table(tmp_path)
    assert list(table["run"]) == ["thesis_seed0"]
    assert bool(table["at_chance"].item()) and table["dead_step_fraction"].item() == 1.0


def test_run_without_logs_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        run_crop_health(tmp_path)
