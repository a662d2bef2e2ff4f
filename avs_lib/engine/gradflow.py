"""Where each loss term can act: gradient norms per parameter group, and the crop classifier's health.

A loss can only change the parameters its gradient reaches. The thesis' crop losses (A: crop
cross-entropy, B: pairwise crop distance, C: audio-crop cosine) are meant to improve the
segmentation model, but which parts of it they touch depends on the wiring: a separate crop
trunk takes A and B away from the AVS encoder, and a frozen shared trunk stops them before it.
Loss C reaches TPAVI's audio projection when it reads TPAVI's aligned audio (`loss.cosine_audio`
"tpavi"), and only the crop network when it reads the frozen audio embedding as the write-up says
("frozen"): the tables of both readings show what each can change.
`gradient_flow` measures this instead of arguing it: one batch, one backward pass per term, and
the norm of the gradient each parameter group receives (0.0 for a group the term never reaches
or whose parameters are frozen).

`crop_health` looks at the crop classifier's outputs: the write-up's ReLU on the class scores
zeroes every score of a crop whose pre-activation scores are all <= 0, and such a crop's
cross-entropy is ln(23) with no gradient at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
import yaml

from avs_lib.config import ExperimentConfig
from avs_lib.data import collate_clips
from avs_lib.data.categories import NUM_CLASSES
from avs_lib.data.counterfactual import CounterfactualPairs
from avs_lib.engine.datasets import build_dataset
from avs_lib.engine.system import AVSSystem
from avs_lib.engine.train import read_history, read_steps
from avs_lib.losses import TERMS, LossWeights, TotalLoss

# Parameter groups by name prefix (names as `AVSSystem.named_parameters` gives them; a shared
# crop trunk's parameters are the AVS encoder's and are named, and counted, there).
PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "avs_encoder": ("model.resnet.",),
    "fusion": ("model.tpavi_b", "model.cross_attention_b"),
    "decoder": ("model.conv", "model.path", "model.output_conv."),
    "audio_encoder": ("audio_encoder.",),
    "crop_network": ("crop_classifier.", "crop_to_audio."),
}
OTHER_GROUP = "other"
CHANCE_CROP_CE = math.log(NUM_CLASSES)  # cross-entropy of uniform scores over the 23 classes


# ---------------------------------------------------------------- gradient flow


def _group_of(name: str, groups: Mapping[str, Sequence[str]]) -> str:
    for group, prefixes in groups.items():
        if any(name.startswith(p) for p in prefixes):
            return group
    return OTHER_GROUP


def _enabled_terms(weights: LossWeights) -> list[str]:
    return [term for term in TERMS if getattr(weights, term) > 0]


def _single_term(weights: LossWeights, term: str) -> TotalLoss:
    """A TotalLoss that computes `term` alone, unweighted, with the run's options for it."""
    return TotalLoss(dataclasses.replace(weights, **{t: float(t == term) for t in TERMS}))


def gradient_flow(
    system: AVSSystem,
    batch: dict,
    terms: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Gradient norm each parameter group receives from each loss term alone, on one batch.

    Rows: the loss terms (default: those the system's config weights above 0; each unweighted);
    columns: the groups (default `PARAMETER_GROUPS`, plus "other" only if some trainable
    parameter belongs to none). A value is the L2 norm over the group's trainable parameters of
    d(term)/d(parameters); 0.0 where the term does not reach the group or the group is frozen.

    The forward pass runs in eval mode (BatchNorm statistics untouched; the paths gradients take
    are the same as in training) and the system's mode and gradients are restored afterwards.
    """
    groups = PARAMETER_GROUPS if groups is None else groups
    terms = list(_enabled_terms(system.cfg.loss) if terms is None else terms)
    unknown = [t for t in terms if t not in TERMS]
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; valid terms: {', '.join(TERMS)}")
    named = list(system.named_parameters())  # a shared parameter appears once, first name wins
    trainable = [(n, p) for n, p in named if p.requires_grad]
    columns = list(groups)
    if any(_group_of(n, groups) == OTHER_GROUP for n, _ in named):
        columns.append(OTHER_GROUP)
    was_training = system.training
    system.eval()
    try:
        outputs = system(batch, cf_audio=batch.get("cf_audio"))
        rows = {}
        for term in terms:
            value, _ = _single_term(system.cfg.loss, term)(outputs, batch)
            if value.requires_grad:
                grads = torch.autograd.grad(value, [p for _, p in trainable], retain_graph=True, allow_unused=True)
            else:  # the term depends on no trainable parameter at all
                grads = (None,) * len(trainable)
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


def first_batch(cfg: ExperimentConfig, split: str = "train", clips: int | None = None) -> dict:
    """The first `clips` clips (default: one training batch) of a split, as training sees them:
    with counterfactual audio when the config trains the counterfactual term."""
    dataset = build_dataset(cfg, split)
    if cfg.loss.counterfactual > 0:
        dataset = CounterfactualPairs(dataset, seed=cfg.seed)
    count = min(len(dataset), clips or cfg.optim.batch_size)
    return collate_clips([dataset[i] for i in range(count)])


def gradient_flow_table(configs: Mapping[str, ExperimentConfig], batch: dict | None = None) -> pd.DataFrame:
    """`gradient_flow` of each method's freshly built system (at its seed), stacked with a
    (method, term) index: which loss reaches what, by wiring alone, before any training."""
    frames = {}
    for method, cfg in configs.items():
        torch.manual_seed(cfg.seed)
        system = AVSSystem(cfg)
        frames[method] = gradient_flow(system, batch if batch is not None else first_batch(cfg))
    table = pd.concat(frames, names=["method", "term"]).fillna(0.0)
    return table


# ---------------------------------------------------------------- crop-classifier health


@torch.no_grad()
def crop_health(system: AVSSystem, batch: dict) -> dict[str, float | bool | int]:
    """The crop classifier on one batch: its cross-entropy and how much of it a final ReLU kills.

    Returns crop_ce (on the scores as the system outputs them), chance_crop_ce (ln 23),
    dead_crop_fraction (crops whose pre-ReLU scores are all <= 0: with the ReLU their scores are
    all 0, the CE is ln 23 and it has no gradient), dead_class_fraction (class outputs <= 0 on
    every crop of the batch), final_relu and crops. Runs in eval mode; the mode is restored.
    """
    if system.crop_classifier is None:
        raise ValueError("this system has no crop classifier (its config weights no crop loss)")
    captured: list[torch.Tensor] = []
    hook = system.crop_classifier.classifier.register_forward_hook(
        lambda _module, _inputs, output: captured.append(output.detach()))
    was_training = system.training
    system.eval()
    try:
        outputs = system(batch)
    finally:
        hook.remove()
        system.train(was_training)
    pre_relu = captured[-1]  # [B*T, 23] class scores before the final ReLU
    labels = torch.as_tensor(batch["category"]).reshape(-1).repeat_interleave(system.frames)  # [B] -> [B*T]
    dead = (pre_relu <= 0)
    return {
        "crop_ce": float(torch.nn.functional.cross_entropy(outputs["crop_scores"].float(), labels)),
        "chance_crop_ce": CHANCE_CROP_CE,
        "dead_crop_fraction": float(dead.all(1).double().mean()),
        "dead_class_fraction": float(dead.all(0).double().mean()),
        "final_relu": bool(system.crop_classifier.final_relu),
        "crops": int(pre_relu.shape[0]),
    }


def run_crop_health(run_dir: str | Path, tolerance: float = 1e-4) -> dict[str, float | int | bool | str]:
    """Crop-classifier health of a finished run, from its logs (steps.jsonl, metrics.jsonl).

    final_crop_ce is the last epoch's mean training crop CE, beside chance_crop_ce = ln 23;
    dead_step_fraction is the share of that epoch's steps whose crop CE equals ln 23 within
    `tolerance`, the mark of a batch whose every crop score the final ReLU zeroed;
    at_chance says whether the final CE is within 0.01 of ln 23.
    """
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
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"run config not found: {run_dir / 'config.yaml'}")
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    return {
        "run": run_dir.name,
        "method": config.get("name"),
        "seed": config.get("seed"),
        "epoch": int(last),
        "final_crop_ce": final,
        "chance_crop_ce": CHANCE_CROP_CE,
        "at_chance": abs(final - CHANCE_CROP_CE) < 0.01,
        "dead_step_fraction": dead / len(steps),
        "steps": len(steps),
    }


def crop_health_table(runs_dir: str | Path) -> pd.DataFrame:
    """`run_crop_health` of every run under `runs_dir` that trained the crop CE, one row each."""
    runs_dir = Path(runs_dir)
    rows = []
    for metrics in sorted(runs_dir.glob("*/metrics.jsonl")):
        epochs = read_history(metrics.parent)
        if epochs and "train_crop_ce" in epochs[-1]:
            rows.append(run_crop_health(metrics.parent))
    if not rows:
        raise FileNotFoundError(f"no run under {runs_dir} trained the crop CE (*/metrics.jsonl with train_crop_ce)")
    return pd.DataFrame(rows)


__all__ = [
    "CHANCE_CROP_CE",
    "PARAMETER_GROUPS",
    "crop_health",
    "crop_health_table",
    "first_batch",
    "gradient_flow",
    "gradient_flow_table",
    "run_crop_health",
]
