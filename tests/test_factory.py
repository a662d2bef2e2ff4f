"""Datasets as the engine builds them from a config: limits and dense synthetic supervision."""

import numpy as np
import pytest
import torch
from PIL import Image

from avs_lib.data.avsbench import collate_clips
from avs_lib.datatools.profiles import build_config
from avs_lib.engine.datasets import build_dataset


def _cfg(root, **data):
    return build_config("smoke", "tpavi", overrides={"data": {"root": str(root), "train_limit": None, **data}})


def test_dense_train_masks_supervise_all_five_frames_with_the_sounding_object(tiny_synth):
    plain = build_dataset(_cfg(tiny_synth), "train")
    dense = build_dataset(_cfg(tiny_synth, dense_train_masks=True), "train")
    assert len(dense) == len(plain) and dense.clips == plain.clips
    for index in range(len(plain)):
        a, b = plain[index], dense[index]
        assert a["mask_frames"].tolist() == [0] and b["mask_frames"].tolist() == [0, 1, 2, 3, 4]
        assert b["masks"].shape == (5, 1, 64, 64)
        # frame 1's mask is the annotated PNG; the others come from the sidecar's object 0
        assert torch.equal(b["masks"][0], a["masks"][0])
        sidecar = dense.sidecar(a["name"]).masks[0]
        for k in range(5):
            expected = np.asarray(Image.fromarray(sidecar[k]).resize((64, 64), Image.Resampling.NEAREST)) > 0
            assert torch.equal(b["masks"][k, 0] > 0, torch.from_numpy(expected))
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])
    batch = collate_clips([dense[0], dense[1]])
    assert batch["masks"].shape == (2, 5, 1, 64, 64)


def test_dense_masks_touch_only_the_training_split(tiny_synth):
    cfg = _cfg(tiny_synth, dense_train_masks=True)
    val = build_dataset(cfg, "val")
    assert val[0]["mask_frames"].tolist() == [0, 1, 2, 3, 4]  # val/test are annotated anyway
    assert "DenseSidecarMasks" not in type(val).__name__


def test_dense_masks_without_a_sidecar_name_the_dataset(tmp_path):
    from official_layout import write_s4

    root = tmp_path / "s4"
    write_s4(root)
    with pytest.raises(ValueError, match=r"dense_train_masks needs a synthetic dataset.*s4"):
        build_dataset(_cfg(root, dense_train_masks=True, crop_labels=False), "train")


def test_dense_masks_train_the_model(tiny_synth, tmp_path):
    from avs_lib.engine.train import fit

    cfg = build_config("smoke", "tpavi", overrides={
        "data": {"root": str(tiny_synth), "dense_train_masks": True}, "output_dir": str(tmp_path),
        "quiet": True, "optim": {"epochs": 1, "steps_per_epoch": 2}})
    result = fit(cfg)
    assert np.isfinite(result.history[-1]["train_total"])
