"""Evaluation: how good are the masks (mIoU, F-score), and does the model segment what it hears?

For the second, the split is re-run with silent audio and with audio swapped in from a clip of
another class: how each mask changes (any data), and whether it moves onto the swapped-in object
(synthetic data, whose sidecar knows every object)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from avs_lib.atomic import write_text_atomically
from avs_lib.config import ExperimentConfig, config_from_dict, to_dict
from avs_lib.configtools import deep_merge
from avs_lib.data import collate_clips
from avs_lib.data.audio import cache_dir_or
from avs_lib.data.avsbench import LAYOUTS
from avs_lib.data.counterfactual import resize_masks
from avs_lib.engine.datasets import build_dataset, full_split
from avs_lib.engine.features import with_frozen_features
from avs_lib.engine.system import load_system, select_device
from avs_lib.metrics import (
    AudioChangeMeter,
    Evaluator,
    ListeningMeter,
    audio_change_summary,
    audio_change_table,
)

SILENCE_LOG_MEL = math.log(0.01)  # log(mel + 0.01) of an all-zero waveform
CHANGED_AUDIO = ("silent", "swapped")


def swap_partners(dataset) -> list[int | None]:
    """Per clip, the index in the whole split of the clip whose audio is swapped in: the sidecar's
    partner (a distractor in the frames), else the next clip of another class (MS3: the next clip)."""
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
        partners.append(next((j for j in order if categories[j] != categories[i] or categories[i] == -1), None))
    return partners


@torch.no_grad()
def predict_logits(system, batch: dict, device: torch.device, audio: torch.Tensor | None = None,
                   audio_embedding: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [B*T, 1, S, S], optionally with replacement audio: a log-mel [B, T, 1, 96, 64] or the
    frozen encoder's embeddings of it [B, T, 128]. Cached encoder outputs in the batch are used."""
    own_audio = audio is None and audio_embedding is None
    cached = [k for k in batch if k.startswith("encoder_stage") or (own_audio and k == "audio_embedding")]
    inputs = {k: batch[k].to(device) for k in ("frames", *cached)}
    inputs["audio"] = (batch["audio"] if audio is None else audio).to(device)
    if audio_embedding is not None:
        inputs["audio_embedding"] = audio_embedding.to(device)
    use_amp = system.cfg.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        maps = system.visual_maps(inputs)  # computed once for several audio tracks of the same frames
        logits = system.model.fuse_and_decode_projected(maps, system.audio_embedding(inputs))[0]
    return logits.float()


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
            raise ValueError(f"clip {name!r} (category {batch['category_name'][b]!r}) would write its masks to "
                             f"{folder}, outside the output folder {base}")
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(pred.shape[1]):
            Image.fromarray(pred[b, t].astype(np.uint8) * 255).save(folder / f"{name}_{t + 1}.png")


def _audio_conditions(batch: dict, dataset, partners: list | None,
                      silent_embedding: torch.Tensor | None) -> dict[str, dict[str, torch.Tensor]]:
    """`predict_logits` keywords per condition: own track, silence, a partner's track. With cached
    frozen audio embeddings, the partner's and silence's embeddings replace re-encoding the tracks."""
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
    """The frozen audio encoder's embedding [T, 128] of silence, where the split caches embeddings."""
    features = getattr(dataset, "features", None)
    if features is None or features.audio is None or system.audio_encoder is None or len(dataset) == 0:
        return None
    silent = torch.full_like(dataset[0]["audio"][None], SILENCE_LOG_MEL).to(device)  # [1, T, 1, 96, 64]
    return system.embed_audio(silent).float().cpu()  # [T, 128]


def _update_listening(meter: ListeningMeter, dataset, offset: int, partners: list, logits_true: torch.Tensor,
                      logits: torch.Tensor) -> None:
    """Add the swapped-audio clips whose swapped-in object is in view, with the sidecar masks [T, S, S]
    of the sounding object and of the object of the partner's class."""
    T, size = logits.shape[0] // len(partners), logits.shape[-1]
    for b, p in enumerate(partners):
        sidecar = None if p is None else dataset.sidecar(dataset.clips[offset + b].name)
        if sidecar is None or not sidecar.masks[0].any():
            continue  # no partner or sidecar, or the sound comes from off-screen: nothing to follow onto
        hits = np.flatnonzero(sidecar.classes == full_split(dataset).clips[p].category_index)
        if len(hits) and hits[0] != 0:
            meter.update(logits_true[b * T:(b + 1) * T], logits[b * T:(b + 1) * T],
                         resize_masks(sidecar.masks[0], size)[:, 0], resize_masks(sidecar.masks[hits[0]], size)[:, 0])


def evaluate_system(system, cfg: ExperimentConfig, split: str, device: torch.device, diagnostics: bool = True,
                    out_dir: str | Path | None = None, dataset=None) -> dict[str, Any]:
    """Metrics of `system` on `split`; with `diagnostics`, also with silent and swapped audio."""
    system.eval()
    dataset = dataset if dataset is not None else build_dataset(cfg, split)
    out_dir = None if out_dir is None else Path(out_dir)
    loader = DataLoader(dataset, batch_size=cfg.eval_batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, collate_fn=collate_clips)
    partners = swap_partners(dataset) if diagnostics else None
    # One rank evaluates (see train.fit), so the evaluators never wait for other ranks.
    evaluators = {m: Evaluator(official_batch_size=cfg.eval_batch_size)
                  for m in (("true", *CHANGED_AUDIO) if diagnostics else ("true",))}
    changes = {m: AudioChangeMeter() for m in CHANGED_AUDIO}
    listening, offset = ListeningMeter(), 0
    silent_embedding = _silent_embedding(system, dataset, device) if diagnostics else None
    for batch in tqdm(loader, desc=f"evaluate {split}", leave=False, disable=cfg.quiet):
        batch_partners = partners[offset: offset + len(batch["name"])] if partners is not None else None
        logits_true = None
        for mode, replacement in _audio_conditions(batch, dataset, batch_partners, silent_embedding).items():
            if mode != "true" and system.audio_encoder is None:
                logits = logits_true  # a visual-only model hears nothing: the same prediction
            else:
                logits = predict_logits(system, batch, device, **replacement)
            if mode == "true":
                logits_true = logits
                if out_dir is not None:
                    _save_masks(logits, batch, out_dir / "pred_masks")
            else:  # swapped: only the clips that got another clip's track
                changes[mode].update(logits_true, logits, batch["name"],
                                     None if mode == "silent" else [p is not None for p in batch_partners])
            evaluators[mode].update_clips(logits, batch)
            if mode == "swapped":
                _update_listening(listening, dataset, offset, batch_partners, logits_true, logits)
        offset += len(batch["name"])
    computed = {mode: evaluator.compute() for mode, evaluator in evaluators.items()}
    results = computed["true"]
    metrics: dict[str, Any] = {"miou": results["miou"], "f_score_official": results["f_score_official"],
                               "f_score_batch_size": cfg.eval_batch_size, "f_score_split": results["f_score_split"],
                               "frames": len(results["per_frame"])}
    metrics.update({f"miou_{mode}": computed[mode]["miou"] for mode in CHANGED_AUDIO if mode in computed})
    if diagnostics:
        metrics.update(audio_change_summary(changes, metrics))
        metrics.update(listening.compute())
    if out_dir is not None:
        if diagnostics:
            write_text_atomically(out_dir / "audio_change_per_clip.csv",
                                  audio_change_table(changes, computed).to_csv(index=False))
        for table in ("per_frame", "per_clip", "per_category"):
            write_text_atomically(out_dir / f"{table}.csv", computed["true"][table].to_csv(index=False))
        write_text_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def evaluate(source, split: str = "test", device: str = "auto", out_dir: str | Path | None = None,
             diagnostics: bool = True, data_root: str | None = None,
             feature_cache: str | Path | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory (its best checkpoint) or a checkpoint file on `split`, writing only to
    the caller's folders; `feature_cache` shares the frozen encoders' outputs between a grid's runs."""
    source = Path(source)
    ckpt = source / "best.pt" if source.is_dir() else source
    run_folder = source if source.is_dir() else source.parent
    dev = select_device(device)
    try:
        system, saved = load_system(ckpt, dev)
    except RuntimeError as err:  # load_state_dict: weights of another architecture or width
        reason = " ".join(str(err).split())
        raise ValueError(f"{ckpt}: its weights do not fit the model its config builds "
                         f"({reason[:400]}{'...' if len(reason) > 400 else ''})") from None
    except ValueError as err:  # config_from_dict: a key or value this version does not know
        if str(err).startswith(str(ckpt)):
            raise
        raise ValueError(f"{ckpt}: the checkpoint's config does not fit this version of avs_lib ({err})") from None
    # The checkpoint's config in the caller's places: its own name folders of another machine.
    cache = cache_dir_or(cache_dir, run_folder / "cache")
    data: dict[str, Any] = {"cache_dir": None if cache is None else str(cache)}
    if data_root is not None:
        data["root"] = str(data_root)
    cfg = config_from_dict(deep_merge(to_dict(saved), {"output_dir": str(run_folder.parent), "data": data}))
    out_dir = run_folder / f"eval_{split}" if out_dir is None else out_dir
    refuse_inside_dataset(out_dir, cfg.data.root, "evaluation folder")
    dataset = build_dataset(cfg, split)
    if feature_cache is not None:
        dataset = with_frozen_features(system, dataset, feature_cache, dev)
    return evaluate_system(system, cfg, split, dev, diagnostics=diagnostics, out_dir=out_dir, dataset=dataset)


def refuse_inside_dataset(out: str | Path, data_root: str | Path | None, flag: str) -> None:
    """A dataset holds only what its authors put there: no output folder inside one."""
    roots = [Path(data_root).resolve()] if data_root is not None else []
    target = Path(out).resolve()
    roots += [folder for folder in (target, *target.parents)
              if any((folder / layout.csv_name).is_file() for layout in LAYOUTS.values())]
    inside = next((root for root in roots if target.is_relative_to(root)), None)
    if inside is not None:
        raise ValueError(f"{flag} {out} is inside the dataset root {inside}; write results outside "
                         "the dataset (it should hold only what its authors put there)")
