"""Evaluation: the official metrics, the batch-independent F-score, and the audio-reliance checks.

`evaluate_system` answers two questions on a split: how good are the masks (mIoU, F-score), and does
the model segment what it *hears*? For the second it re-runs the split with silent audio and with
audio swapped from a clip of another class. On any data (real AVSBench S4 and MS3 included) it
measures how much each clip's predicted mask changes under those tracks (`AudioChangeMeter`: area,
IoU with the true-audio mask, share of clips whose mask moves) and how the mIoU against the ground
truth changes. Only on the synthetic data, whose sidecar knows every object, it also measures the
listening and following rates: how often the mask moves onto the object whose sound was swapped in.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from avs_lib.atomic import write_text_atomically
from avs_lib.config import ExperimentConfig, config_from_dict, to_dict
from avs_lib.configtools import deep_merge
from avs_lib.data import collate_clips
from avs_lib.data.audio import cache_dir_or
from avs_lib.data.avsbench import MS3_LAYOUT, S4_LAYOUT
from avs_lib.engine.datasets import build_dataset, full_split
from avs_lib.engine.features import with_frozen_features
from avs_lib.engine.system import load_system, select_device
from avs_lib.metrics import (
    AudioChangeMeter,
    Evaluator,
    audio_following_rate,
    listening_rate,
    mask_iou,
)

SILENCE_LOG_MEL = math.log(0.01)  # log(mel + 0.01) of an all-zero waveform
CHANGED_AUDIO = ("silent", "swapped")
SIDECAR_ONLY_NOTE = ("synthetic-only: the listening and following rates need the masks of the swapped-in "
                     "class's object, which only the synthetic generator's sidecar knows; this dataset has none")


def swap_partners(dataset) -> list[int | None]:
    """For each clip, the index (in the whole split) of the clip whose audio is swapped in.

    The sidecar's partner where there is one (its class is a distractor in the frames), else the
    next clip of another class; MS3 clips have no class, so the next clip. None: no other clip.
    """
    full = full_split(dataset)
    names = {c.name: i for i, c in enumerate(full.clips)}
    categories = [c.category_index for c in full.clips]
    partners: list[int | None] = []
    for i, clip in enumerate(dataset.clips):  # a ClipSubset is a prefix: i is also the index in `full`
        sidecar = dataset.sidecar(clip.name)
        if sidecar is not None and sidecar.swap_partner:
            partners.append(names.get(sidecar.swap_partner))
            continue
        order = [*range(i + 1, len(categories)), *range(0, i)]  # the next clips first, wrapping around
        # MS3 clips have no class (-1): any other clip's track is another scene's sound.
        others = [j for j in order if categories[j] != categories[i] or categories[i] == -1]
        partners.append(others[0] if others else None)
    return partners


def _object_masks(dataset, index: int, partner: int, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Sidecar masks [T, S, S] of the sounding object and of the object of the partner's class."""
    sidecar = dataset.sidecar(dataset.clips[index].name)
    if sidecar is None or not sidecar.masks[0].any():
        return None  # no sidecar, or the sound comes from off-screen: nothing to follow onto
    hits = np.flatnonzero(sidecar.classes == full_split(dataset).clips[partner].category_index)
    if len(hits) == 0 or hits[0] == 0:
        return None
    masks = torch.from_numpy((sidecar.masks[[0, hits[0]]] > 0).astype(np.float32))  # [2, T, H, W]
    if masks.shape[-1] != size:
        masks = torch.nn.functional.interpolate(masks, size=(size, size), mode="nearest")
    return masks[0], masks[1]


@torch.no_grad()
def predict_logits(system, batch: dict, device: torch.device, audio: torch.Tensor | None = None,
                   audio_embedding: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [B*T, 1, S, S] for a batch, optionally with replacement audio: a log-mel
    [B, T, 1, 96, 64], or the frozen audio encoder's embeddings of it [B, T, 128].

    Cached encoder outputs in the batch (`avs_lib.engine.features`) are used; the visual maps of
    the same frames are computed once for several audio tracks (`AVSSystem.visual_maps`).
    """
    own_audio = audio is None and audio_embedding is None
    cached = [k for k in batch if k.startswith("encoder_stage") or (own_audio and k == "audio_embedding")]
    inputs = {k: batch[k].to(device) for k in ("frames", *cached)}
    inputs["audio"] = (batch["audio"] if audio is None else audio).to(device)
    if audio_embedding is not None:
        inputs["audio_embedding"] = audio_embedding.to(device)
    use_amp = system.cfg.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        maps = system.visual_maps(inputs)
        logits = system.model.fuse_and_decode_projected(maps, system.audio_embedding(inputs))[0]
    return logits.float()


def _gt_frames(logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of the frames that have a mask, those masks, and their frame indices."""
    B = batch["masks"].shape[0]
    T = logits.shape[0] // B
    per_clip = logits.view(B, T, *logits.shape[1:])  # [B*T, 1, S, S] -> [B, T, 1, S, S]
    idx = batch["mask_frames"]  # [B, M]
    chosen = torch.stack([per_clip[b, idx[b]] for b in range(B)])  # [B, M, 1, S, S]
    return chosen.flatten(0, 1), batch["masks"].flatten(0, 1).to(logits.device), idx.flatten()


def _save_masks(logits: torch.Tensor, batch: dict, out_dir: Path) -> None:
    """Predicted masks as PNG in the official layout: {category}/{name}/{name}_{i}.png."""
    B = len(batch["name"])
    pred = (torch.sigmoid(logits) > 0.5).view(B, -1, *logits.shape[-2:]).cpu().numpy()  # [B, T, S, S]
    base = Path(out_dir).resolve()
    for b in range(B):
        name = batch["name"][b]
        folder = (base / batch["category_name"][b] / name).resolve()
        # Names come from the metadata CSV: never let one ('../x') write outside out_dir.
        if not folder.is_relative_to(base) or folder == base:
            raise ValueError(
                f"clip {name!r} (category {batch['category_name'][b]!r}) would write its masks to "
                f"{folder}, outside the output folder {base}"
            )
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(pred.shape[1]):
            Image.fromarray(pred[b, t].astype(np.uint8) * 255).save(folder / f"{name}_{t + 1}.png")


class _Listening:
    """The swapped-audio frames of clips whose swapped-in class is in view (synthetic sidecar):
    masks with the true and the swapped audio, and where the two objects are."""

    def __init__(self):
        self.pred, self.true, self.orig, self.new = [], [], [], []

    def update(self, dataset, offset: int, partners: list, logits_true: torch.Tensor, logits: torch.Tensor) -> None:
        T = logits.shape[0] // len(partners)
        for b, p in enumerate(partners):
            masks = _object_masks(dataset, offset + b, p, logits.shape[-1]) if p is not None else None
            if masks is not None:
                self.pred.append(logits[b * T:(b + 1) * T, 0].cpu())
                self.true.append(logits_true[b * T:(b + 1) * T, 0].cpu())
                self.orig.append(masks[0])
                self.new.append(masks[1])

    def compute(self) -> dict[str, Any]:
        if not self.pred:  # real data: nowhere to look for the swapped-in object
            return {"listening_rate": float("nan"), "following_rate": float("nan"), "listening_frames": 0,
                    "listening_rate_note": SIDECAR_ONLY_NOTE}
        pred, orig, new = torch.cat(self.pred), torch.cat(self.orig), torch.cat(self.new)
        return {"listening_rate": listening_rate(pred, orig, new),
                "following_rate": audio_following_rate(torch.cat(self.true), pred, orig, new),
                "listening_frames": int(sum(len(p) for p in self.pred))}


def _audio_conditions(batch: dict, dataset, partners: list | None,
                      silent_embedding: torch.Tensor | None) -> dict[str, dict[str, torch.Tensor]]:
    """The replacement audio of each condition for a batch, as `predict_logits` keywords: none for
    its own track, then silence and a partner's track.

    Where the split carries a frozen audio encoder's cached embeddings (`WithFrozenFeatures`), the
    partner's cached embedding and the embedding of silence (`silent_embedding`, [T, 128]) are used
    instead of running the encoder on those tracks again: the encoder is frozen, so they are its
    outputs for them.
    """
    if partners is None:
        return {"true": {}}
    cache = dataset.features.audio if silent_embedding is not None else None  # see _silent_embedding
    if cache is not None and all(p is None or p < len(cache) for p in partners):
        own = batch["audio_embedding"]  # [B, T, 128]
        swapped = torch.stack([torch.from_numpy(np.array(cache[p])) if p is not None else own[b]
                               for b, p in enumerate(partners)])
        return {"true": {}, "silent": {"audio_embedding": silent_embedding.expand_as(own)},
                "swapped": {"audio_embedding": swapped}}
    swapped = torch.stack([full_split(dataset).load_audio(p) if p is not None else batch["audio"][b]
                           for b, p in enumerate(partners)])
    return {"true": {}, "silent": {"audio": torch.full_like(batch["audio"], SILENCE_LOG_MEL)},
            "swapped": {"audio": swapped}}


@torch.no_grad()
def _silent_embedding(system, dataset, device: torch.device) -> torch.Tensor | None:
    """The frozen audio encoder's embedding [T, 128] of a silent track, computed once per
    evaluation, where the split carries cached audio embeddings; else None."""
    features = getattr(dataset, "features", None)
    if features is None or features.audio is None or system.audio_encoder is None or len(dataset) == 0:
        return None
    item = dataset[0]
    silent = torch.full_like(item["audio"][None], SILENCE_LOG_MEL).to(device)  # [1, T, 1, 96, 64]
    return system.embed_audio(silent).float().cpu()  # [T, 128]


def _update_evaluator(evaluator: Evaluator, logits: torch.Tensor, batch: dict) -> None:
    sel_logits, sel_masks, frame_ids = _gt_frames(logits, batch)
    M = batch["masks"].shape[1]
    evaluator.update(sel_logits, sel_masks, names=[n for n in batch["name"] for _ in range(M)],
                     categories=[c for c in batch["category_name"] for _ in range(M)], frame_ids=frame_ids.tolist())


def evaluate_system(
    system,
    cfg: ExperimentConfig,
    split: str,
    device: torch.device,
    diagnostics: bool = True,
    out_dir: str | Path | None = None,
    dataset=None,
) -> dict[str, Any]:
    """Metrics of `system` on `split`; with `diagnostics`, also with silent and swapped audio: the
    mask changes (any data) and the listening and following rates (synthetic data)."""
    system.eval()
    dataset = dataset if dataset is not None else build_dataset(cfg, split)
    loader = DataLoader(dataset, batch_size=cfg.eval_batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, collate_fn=collate_clips)
    partners = swap_partners(dataset) if diagnostics else None
    # One rank evaluates (see train.fit), so the evaluators never wait for other ranks.
    evaluators = {m: Evaluator(official_batch_size=cfg.eval_batch_size)
                  for m in (("true", *CHANGED_AUDIO) if diagnostics else ("true",))}
    changes = {m: AudioChangeMeter() for m in CHANGED_AUDIO}
    listening, offset = _Listening(), 0
    silent_embedding = _silent_embedding(system, dataset, device) if diagnostics else None
    for batch in tqdm(loader, desc=f"evaluate {split}", leave=False, disable=cfg.quiet):
        batch_partners = partners[offset: offset + len(batch["name"])] if partners is not None else None
        logits_true = None
        conditions = _audio_conditions(batch, dataset, batch_partners, silent_embedding)
        for mode, replacement in conditions.items():
            if mode != "true" and system.audio_encoder is None:
                logits = logits_true  # a visual-only model hears nothing: the same prediction
            else:
                logits = predict_logits(system, batch, device, **replacement)
            if mode == "true":
                logits_true = logits
                if out_dir is not None:
                    _save_masks(logits, batch, Path(out_dir) / "pred_masks")
            else:
                _update_change(changes[mode], logits_true, logits, batch["name"],
                               None if mode == "silent" else batch_partners)
            _update_evaluator(evaluators[mode], logits, batch)
            if mode == "swapped":
                listening.update(dataset, offset, batch_partners, logits_true, logits)
        offset += len(batch["name"])
    computed = {mode: evaluator.compute() for mode, evaluator in evaluators.items()}
    metrics = _split_metrics(computed, cfg.eval_batch_size)
    if diagnostics:
        metrics.update(_change_metrics(changes, metrics))
        metrics.update(listening.compute())
    if out_dir is not None:
        _write_evaluation(Path(out_dir), metrics, computed, changes if diagnostics else None)
    return metrics


def _split_metrics(computed: dict[str, dict], batch_size: int) -> dict[str, Any]:
    """mIoU and both F-scores with the true audio; mIoU with each changed audio that was run."""
    results = computed["true"]
    metrics: dict[str, Any] = {"miou": results["miou"], "f_score_official": results["f_score_official"],
                               "f_score_batch_size": batch_size, "f_score_split": results["f_score_split"],
                               "frames": len(results["per_frame"])}
    for mode in CHANGED_AUDIO:
        if mode in computed:
            metrics[f"miou_{mode}"] = computed[mode]["miou"]
    return metrics


def _write_evaluation(out_dir: Path, metrics: dict, computed: dict[str, dict],
                      changes: dict[str, AudioChangeMeter] | None) -> None:
    """metrics.json and the per-frame, per-clip and per-category tables (atomically)."""
    results = computed["true"]
    if changes is not None:
        write_text_atomically(out_dir / "audio_change_per_clip.csv",
                              _change_table(changes, computed).to_csv(index=False))
    write_text_atomically(out_dir / "per_frame.csv", results["per_frame"].to_csv(index=False))
    write_text_atomically(out_dir / "per_clip.csv", results["per_clip"].to_csv(index=False))
    write_text_atomically(out_dir / "per_category.csv", results["per_category"].to_csv(index=False))
    write_text_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def _update_change(meter: AudioChangeMeter, logits_true: torch.Tensor, logits: torch.Tensor,
                   names: list[str], partners: list[int | None] | None) -> None:
    """Add a batch to `meter`; for swapped audio only the clips that got another clip's track."""
    B = len(names)
    keep = [b for b in range(B) if partners is None or partners[b] is not None]
    if not keep:
        return
    T = logits.shape[0] // B
    frames = torch.tensor([b * T + t for b in keep for t in range(T)], device=logits.device)  # clip-major
    meter.update(logits_true[frames], logits[frames], [names[b] for b in keep])


def _change_metrics(changes: dict[str, AudioChangeMeter], metrics: dict[str, Any]) -> dict[str, Any]:
    """`{mode}_area_change`, `_abs_area_change`, `_iou_to_true`, `_moved_share`, `_clips`, and
    `{mode}_miou_change` (mIoU against the ground truth with that audio minus with the true one)."""
    out: dict[str, Any] = {}
    for mode, meter in changes.items():
        result = meter.compute()
        for key in ("area_change", "abs_area_change", "iou_to_true", "moved_share", "clips"):
            out[f"{mode}_{key}"] = result[key]
        out[f"{mode}_miou_change"] = metrics[f"miou_{mode}"] - metrics["miou"]
    return out


def _change_table(changes: dict[str, AudioChangeMeter], computed: dict[str, dict]) -> pd.DataFrame:
    """One row per (audio, clip): the mask changes, and the clip's IoU against the ground truth with
    the true and with the changed audio (`computed`: each Evaluator's results by audio)."""
    gt_true = computed["true"]["per_clip"].set_index("name")["iou"]
    tables = []
    for mode, meter in changes.items():
        table = meter.compute()["per_clip"]
        gt_changed = computed[mode]["per_clip"].set_index("name")["iou"]
        table.insert(0, "audio", mode)
        table["gt_iou_true"] = table["name"].map(gt_true)
        table["gt_iou_changed"] = table["name"].map(gt_changed)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def evaluate(source, split: str = "test", device: str = "auto", out_dir: str | Path | None = None,
             diagnostics: bool = True, data_root: str | None = None,
             feature_cache: str | Path | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory (its best checkpoint) or a checkpoint file on `split`.

    With `feature_cache` (a folder), the frozen encoders' outputs on the split are read from there
    (computed on first use, `avs_lib.engine.features`): models that share frozen encoders, as every
    run of a grid does, then run them once per split between them instead of once each. Every folder
    written to is the caller's (`out_dir`, `cache_dir`), never one the checkpoint's config names.
    """

    source = Path(source)
    ckpt = source / "best.pt" if source.is_dir() else source
    run_folder = source if source.is_dir() else source.parent
    dev = select_device(device)
    system, saved = _load_for_evaluation(ckpt, dev)
    cfg = _in_callers_places(saved, run_folder, data_root, cache_dir)
    if out_dir is None:
        out_dir = run_folder / f"eval_{split}"
    refuse_inside_dataset(out_dir, cfg.data.root, "evaluation folder")
    dataset = build_dataset(cfg, split)
    if feature_cache is not None:
        dataset = with_frozen_features(system, dataset, feature_cache, dev)
    return evaluate_system(system, cfg, split, dev, diagnostics=diagnostics, out_dir=out_dir, dataset=dataset)


def _load_for_evaluation(path: Path, device: torch.device) -> tuple[Any, ExperimentConfig]:
    """`load_system`, its errors as one line naming the checkpoint and what in it does not fit."""
    try:
        return load_system(path, device)
    except RuntimeError as err:  # load_state_dict: weights of another architecture or width
        reason = " ".join(str(err).split())
        raise ValueError(f"{path}: its weights do not fit the model its config builds "
                         f"({reason[:400]}{'...' if len(reason) > 400 else ''})") from None
    except ValueError as err:  # config_from_dict: a key or value this version does not know
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: the checkpoint's config does not fit this version of avs_lib ({err})") from None


def _in_callers_places(saved: ExperimentConfig, run_folder: Path, data_root: str | Path | None,
                       cache_dir: str | Path | None) -> ExperimentConfig:
    """The checkpoint's config with every place replaced by this caller's: a checkpoint from
    elsewhere names folders of another machine, or of whoever made the file, never written to here."""
    data: dict[str, Any] = {"cache_dir": cache_dir_or(cache_dir, run_folder / "cache")}
    if data_root is not None:
        data["root"] = str(data_root)
    if data["cache_dir"] is not None:
        data["cache_dir"] = str(data["cache_dir"])
    places = {"output_dir": str(run_folder.parent), "data": data}
    return config_from_dict(deep_merge(to_dict(saved), places))


def refuse_inside_dataset(out: str | Path, data_root: str | Path | None, flag: str) -> None:
    """Refuse an output folder inside a dataset: a dataset holds only what its authors put there."""
    roots = [Path(data_root).resolve()] if data_root is not None else []
    target = Path(out).resolve()
    roots += [folder for folder in (target, *target.parents)
              if any((folder / layout.csv_name).is_file() for layout in (S4_LAYOUT, MS3_LAYOUT))]
    inside = next((root for root in roots if target.is_relative_to(root)), None)
    if inside is not None:
        raise ValueError(f"{flag} {out} is inside the dataset root {inside}; write results outside "
                         "the dataset (it should hold only what its authors put there)")


__all__ = ["evaluate", "evaluate_system", "mask_iou", "predict_logits", "refuse_inside_dataset",
           "swap_partners"]
