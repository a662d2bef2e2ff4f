"""Where each loss term can act (gradient norms per parameter group), and the crop classifier's health.

Which parts of the segmentation model the thesis' crop losses reach depends on the wiring (a
separate or frozen crop trunk, Loss C on TPAVI's aligned audio or on the frozen embedding). The
write-up's ReLU on the class scores gives a crop whose scores are all <= 0 the CE ln(23) and no gradient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from avs_lib.config import ExperimentConfig
from avs_lib.data import collate_clips
from avs_lib.data.categories import NUM_CLASSES
from avs_lib.engine.datasets import as_fed, build_dataset
from avs_lib.engine.system import AVSSystem
from avs_lib.engine.train import read_history, read_steps
from avs_lib.losses import TERMS, TotalLoss
from avs_lib.report.experiments import run_identity

# Parameter groups by name prefix; a shared crop trunk's parameters are counted as the AVS encoder's.
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "avs_encoder": ("model.resnet.",),
    "fusion": ("model.tpavi_b", "model.cross_attention_b"),
    "decoder": ("model.conv", "model.path", "model.output_conv."),
    "audio_encoder": ("audio_encoder.",),
    "crop_network": ("crop_classifier.", "crop_to_audio."),
}
OTHER_GROUP = "other"
CHANCE_CROP_CE = math.log(NUM_CLASSES)  # cross-entropy of uniform scores over the 23 classes


def _group_of(name: str, groups: Mapping[str, Sequence[str]]) -> str:
    return next((group for group, prefixes in groups.items() if name.startswith(tuple(prefixes))), OTHER_GROUP)


def gradient_flow(system: AVSSystem, batch: dict, terms: Sequence[str] | None = None,
                  groups: Mapping[str, Sequence[str]] = PARAMETER_GROUPS) -> pd.DataFrame:
    """L2 norm of the gradient each parameter group (column) gets from each loss term alone (row),
    unweighted; 0.0 where the term does not reach the group or it is frozen. Restores the system's mode."""
    weights = system.cfg.loss
    terms = [t for t in TERMS if getattr(weights, t) > 0] if terms is None else list(terms)
    unknown = [t for t in terms if t not in TERMS]
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; valid terms: {', '.join(TERMS)}")
    named = list(system.named_parameters())  # a shared parameter appears once, first name wins
    trainable = [(n, p) for n, p in named if p.requires_grad]
    columns = list(groups) + ([OTHER_GROUP] if any(_group_of(n, groups) == OTHER_GROUP for n, _ in named) else [])
    was_training = system.training
    system.eval()
    try:
        outputs = system(batch, cf_audio=batch.get("cf_audio"))
        rows = {}
        for term in terms:
            alone = TotalLoss(dataclasses.replace(weights, **{t: float(t == term) for t in TERMS}))
            value, _ = alone(outputs, batch)
            grads = (torch.autograd.grad(value, [p for _, p in trainable], retain_graph=True, allow_unused=True)
                     if value.requires_grad else (None,) * len(trainable))
            squares = dict.fromkeys(columns, 0.0)
            for (name, _), grad in zip(trainable, grads, strict=True):
                if grad is not None:
                    squares[_group_of(name, groups)] += float(grad.detach().double().pow(2).sum())
            rows[term] = {g: math.sqrt(s) for g, s in squares.items()}
    finally:
        system.train(was_training)
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index.name = "term"
    return table


def first_batch(cfg: ExperimentConfig) -> dict:
    """The first training batch as training sees it (with counterfactual audio when trained)."""
    dataset = as_fed(cfg, build_dataset(cfg, "train"))
    return collate_clips([dataset[i] for i in range(min(len(dataset), cfg.optim.batch_size))])


def gradient_flow_table(configs: Mapping[str, ExperimentConfig]) -> pd.DataFrame:
    """`gradient_flow` of each method's freshly built system, indexed (method, term): wiring alone."""
    frames = {}
    for method, cfg in configs.items():
        torch.manual_seed(cfg.seed)
        frames[method] = gradient_flow(AVSSystem(cfg), first_batch(cfg))
    return pd.concat(frames, names=["method", "term"]).fillna(0.0)


def run_crop_health(run_dir: str | Path, tolerance: float = 1e-4) -> dict[str, float | int | bool | str]:
    """A finished run's last-epoch crop CE beside ln 23, and the share of its steps at ln 23 (a batch
    whose every crop score the final ReLU zeroed)."""
    run_dir = Path(run_dir)
    epochs = read_history(run_dir)
    if not epochs or "train_crop_ce" not in epochs[-1]:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no train_crop_ce: the run trained no crop CE")
    last = epochs[-1]["epoch"]
    steps = [s for s in read_steps(run_dir) if s.get("epoch") == last and "crop_ce" in s]
    if not steps:
        raise ValueError(f"{run_dir / 'steps.jsonl'} has no crop_ce step of epoch {last}")
    final = float(epochs[-1]["train_crop_ce"])
    dead = sum(abs(s["crop_ce"] - CHANCE_CROP_CE) <= tolerance for s in steps)
    method, seed = run_identity(run_dir)
    return {"run": run_dir.name, "method": method, "seed": seed, "epoch": int(last),
            "final_crop_ce": final, "chance_crop_ce": CHANCE_CROP_CE, "at_chance": abs(final - CHANCE_CROP_CE) < 0.01,
            "dead_step_fraction": dead / len(steps), "steps": len(steps)}


def crop_health_table(runs_dir: str | Path) -> pd.DataFrame:
    """`run_crop_health` of every run under `runs_dir` that trained the crop CE."""
    runs_dir = Path(runs_dir)
    rows = [run_crop_health(m.parent) for m in sorted(runs_dir.glob("*/metrics.jsonl"))
            if (epochs := read_history(m.parent)) and "train_crop_ce" in epochs[-1]]
    if not rows:
        raise FileNotFoundError(f"no run under {runs_dir} trained the crop CE (*/metrics.jsonl with train_crop_ce)")
    return pd.DataFrame(rows)
