"""The audio-counterfactual objective: pairs, targets, and a run on the official (real-data) layout."""

import pytest
import torch
from official_layout import write_s4

from avs_lib.data import AVSBenchS4
from avs_lib.data.counterfactual import CounterfactualPairs
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.train import fit, read_steps


def test_without_a_sidecar_the_partner_has_another_class_and_the_target_is_empty(tmp_path):
    write_s4(tmp_path)
    base = AVSBenchS4(tmp_path, "train", image_size=32, audio="pkl")
    pairs = CounterfactualPairs(base, seed=0)
    for i in range(len(pairs)):
        item = pairs[i]
        assert not item["cf_present"]
        assert item["cf_masks"].shape == (5, 1, 32, 32) and item["cf_masks"].sum() == 0
        partner_audio = [base.load_audio(j) for j in range(len(base)) if base.clips[j].category != base.clips[i].category]
        assert any(torch.equal(item["cf_audio"], a) for a in partner_audio)


def test_synthetic_pairs_put_the_target_on_the_distractor_of_the_partners_class(tiny_synth):
    base = AVSBenchS4(tiny_synth, "train", image_size=64)
    pairs = CounterfactualPairs(base, seed=0, present_fraction=1.0)
    present = 0
    for i in range(len(pairs)):
        item = pairs[i]
        sidecar = base.sidecar(item["name"])
        if len(sidecar.classes) < 2:
            assert not item["cf_present"] and item["cf_masks"].sum() == 0
            continue
        present += 1
        assert item["cf_present"]
        target = item["cf_masks"][:, 0] > 0
        k = [j for j in range(1, len(sidecar.classes))
             if torch.equal(torch.from_numpy(sidecar.masks[j] > 0), target)]
        assert k, "the target is the mask of one of the distractors"
    assert present > 0


def test_pairs_are_a_function_of_seed_epoch_and_index(tiny_synth):
    base = AVSBenchS4(tiny_synth, "train", image_size=64)
    a, b = CounterfactualPairs(base, seed=1), CounterfactualPairs(base, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert all(torch.equal(a[i]["cf_audio"], b[i]["cf_audio"]) for i in range(len(a)))


@pytest.mark.slow
def test_counterfactual_objective_runs_in_the_paper_setting_on_official_layout_data(tmp_path):
    write_s4(tmp_path / "avsbench")
    cfg = build_config("paper", "counterfactual", overrides={
        "data": {"root": str(tmp_path / "avsbench"), "image_size": 32, "num_workers": 0},
        "model": {"backbone": "resnet18", "channel": 32},
        "optim": {"epochs": 1, "batch_size": 2},
        "eval_batch_size": 1, "output_dir": str(tmp_path / "runs"), "quiet": True,
    })
    assert cfg.data.audio == "pkl" and cfg.model.audio_encoder == "vggish"
    result = fit(cfg)
    step = read_steps(result.run_dir)[0]
    assert step["counterfactual"] > 0 and step["avs_bce"] > 0
    assert "miou_swapped" in result.test_metrics
