"""Training: `fit(cfg)` runs one experiment end to end and returns what it measured.

A straight line (torchvision references): set up, then per epoch train, checkpoint, validate, then
test the best checkpoint. Every source of randomness is a function of (seed, epoch) and the RNG state
is checkpointed, so a run killed mid-epoch and resumed ends with the same weights, bit for bit, on the CPU.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from avs_lib.atomic import write_text_atomically
from avs_lib.config import RESUME_FREE_KEYS, ExperimentConfig, save_config, to_dict
from avs_lib.configtools import ConfigError, flatten
from avs_lib.data import collate_clips
from avs_lib.data.audio import cache_dir_or
from avs_lib.data.counterfactual import CounterfactualPairs
from avs_lib.engine import checkpoint, features
from avs_lib.engine.datasets import as_fed, build_dataset, kept_in_memory
from avs_lib.engine.evaluate import evaluate_system
from avs_lib.engine.provenance import write_provenance
from avs_lib.engine.system import AVSSystem, load_system, select_device
from avs_lib.losses import TotalLoss

LOCK_FILE = "train.lock"  # holds the pid of the process training in the run folder
# The validation metrics logged per epoch (with `val_diagnostics`, the audio checks too).
VAL_METRICS = ("miou", "f_score_split", "miou_swapped", "miou_silent", "listening_rate", "following_rate")


@dataclass
class RunResult:
    run_dir: Path
    best_epoch: int
    best_val_miou: float
    test_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class _RunState:
    start_epoch: int = 0
    global_step: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": -1, "val_miou": -1.0})
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def init_distributed(device_name: str) -> DistInfo:
    """Join torchrun's process group (RANK/WORLD_SIZE/LOCAL_RANK, the library's one environment read)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    return info


def build_optimizer(cfg: ExperimentConfig, params) -> torch.optim.Optimizer:
    """Adam(W) runs fused (several times faster on the CPU; may round differently in the last bits)."""
    o = cfg.optim
    params = [p for p in params if p.requires_grad]
    if o.optimizer not in ("adam", "adamw"):
        return torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay)
    fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
    adam = torch.optim.Adam if o.optimizer == "adam" else torch.optim.AdamW
    return adam(params, lr=o.lr, weight_decay=o.weight_decay, fused=fused)


def build_scheduler(cfg: ExperimentConfig, optimizer, total_steps: int):
    """Linear warm-up then constant (`none`) or cosine decay, stepped once per optimiser step."""
    warmup, kind = cfg.optim.warmup_steps, cfg.optim.scheduler

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def to_channels_last(module: torch.nn.Module) -> None:
    """Conv2d weights only: `module.to(memory_format=...)` raises on TPAVI's 5-D Conv3d weights."""
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.to(memory_format=torch.channels_last)


def move_batch(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train_one_epoch(system: torch.nn.Module, loss_fn: TotalLoss, optimizer: torch.optim.Optimizer, scheduler,
                    loader: DataLoader, device: torch.device, epoch: int, cfg: ExperimentConfig, step_log=None,
                    global_step: int = 0) -> tuple[dict[str, float], int]:
    """One pass over `loader`; returns the mean of each loss term and the new global step."""
    system.train()
    if cfg.freeze_bn:
        for module in system.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    use_amp = cfg.amp and device.type == "cuda"
    sums: dict[str, float] = {}
    steps = len(loader)
    bar = tqdm(loader, total=steps, desc=f"epoch {epoch}", leave=False, disable=cfg.quiet)
    for step, batch in enumerate(bar):
        batch = move_batch(batch, device)
        # Before the forward: the old gradients then never live alongside its activations (peak memory).
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            outputs = system(batch, cf_audio=batch.get("cf_audio"))
            total, parts = loss_fn(outputs, batch)
        if not torch.isfinite(total):
            last = cfg.run_dir / "last.pt"
            kept = f"the last checkpoint {last} is intact" if last.is_file() else "no checkpoint was written yet"
            raise FloatingPointError(f"non-finite loss at epoch {epoch}, step {step} (global step {global_step}): "
                                     + ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
                                     + f"; stopped before the update, {kept}")
        total.backward()
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(system.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        global_step += 1
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix(loss=f"{parts['total']:.4f}")
        if step_log is not None:
            step_log({"epoch": epoch, "step": step, "global_step": global_step,
                      "lr": scheduler.get_last_lr()[0], **parts})
    return {k: v / max(1, steps) for k, v in sums.items()}, global_step


def _checkpoint(system, cfg, epoch: int, global_step: int, best: dict, optimizer=None, scheduler=None) -> dict:
    """last.pt with the optimiser, scheduler and RNG a resume needs; best.pt (for evaluation) without
    them, as Adam's moments are two thirds of the thesis' file. Weights in both key sets."""
    resume = {} if optimizer is None else {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                           "rng": checkpoint.rng_state()}
    return {"config": to_dict(cfg), **checkpoint.weight_entries(system, cfg), **resume, "epoch": epoch,
            "global_step": global_step, "best": best}


def _append_step(run_dir: Path, record: dict) -> None:
    with open(run_dir / "steps.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _read_jsonl(path: Path, key: str, torn_tail_ok: bool = False) -> list[tuple[str, dict]]:
    """(line, record) pairs of a JSON-lines log; with `torn_tail_ok` a bad last line (what a killed
    run was appending after its last checkpoint) is dropped, any other bad line is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path} (written by avs_lib.engine.train.fit)")
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or key not in record:
                raise ValueError(f"expected a JSON object with {key!r}")
        except ValueError as err:
            if torn_tail_ok and number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not a record of the log ({err}); "
                             "the file is damaged (truncated or edited)") from None
        records.append((line, record))
    return records


def _truncate_steps_log(run_dir: Path, global_step: int) -> None:
    """After a resume, drop step records written after the checkpoint (they will be redone)."""
    path = run_dir / "steps.jsonl"
    if path.exists():
        records = _read_jsonl(path, "global_step", torn_tail_ok=True)
        write_text_atomically(path, "".join(line + "\n" for line, r in records if r["global_step"] <= global_step))


def config_changes(saved: dict[str, Any], current: dict[str, Any], absent: Any = "<absent>") -> dict[str, tuple[Any, Any]]:
    """key -> (saved, now) for the dotted keys that differ beyond RESUME_FREE_KEYS."""
    old, new = flatten(saved), flatten(current)
    return {key: (old.get(key, absent), new.get(key, absent)) for key in sorted(set(old) | set(new))
            if key not in RESUME_FREE_KEYS and old.get(key, absent) != new.get(key, absent)}


def _load_for_resume(path: Path, cfg: ExperimentConfig, allow_config_change: bool) -> dict | None:
    """The checkpoint to resume from, made with this config (unless allowed); None if absent."""
    if not path.exists():
        warnings.warn(f"resume: no checkpoint at {path}; starting a fresh run", stacklevel=3)
        return None
    ckpt = checkpoint.load_checkpoint(path)
    changes = config_changes(ckpt.get("config", {}), to_dict(cfg))
    if changes and not allow_config_change:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        raise ConfigError(f"{path}: cannot resume, the config differs from the checkpoint's in {len(changes)} key(s): "
                          f"{listed}. Resume with the run's own config, or allow the change explicitly "
                          "(fit(..., allow_config_change=True); CLI --resume-changed-config)")
    if changes:
        warnings.warn(f"resume: config changed from {path}'s in {', '.join(changes)}", stacklevel=3)
    return ckpt


def fit(cfg: ExperimentConfig, resume: bool = False, allow_config_change: bool = False) -> RunResult:
    """Train, validate every `eval_every` epochs, keep the best by val mIoU, test it once; `resume`
    continues from `last.pt` (a changed config only if allowed). Runs with `cfg.threads` CPU threads."""
    before, started = torch.get_num_threads(), time.perf_counter()
    if cfg.threads is not None and select_device(cfg.device).type == "cpu":
        torch.set_num_threads(cfg.threads)
    cache = cache_dir_or(cfg.data.cache_dir, cfg.run_dir / "cache")
    if cache is not None and cfg.data.cache_dir is None:  # no home to cache in: config.yaml says where
        cfg = replace(cfg, data=replace(cfg.data, cache_dir=str(cache)))
    try:
        dinfo = init_distributed(cfg.device)
        device = select_device(cfg.device)
        if device.type == "cuda" and dinfo.world_size > 1:
            device = torch.device("cuda", dinfo.local_rank)
        seed_everything(cfg.seed)
        ckpt = _open_run_dir(cfg, dinfo, device, resume, allow_config_change)

        system = AVSSystem(cfg).to(device)
        train_set, pairs = _training_set(cfg, system, device)
        val_set = _split_with_features(cfg, system, "val", device) if dinfo.is_main else None
        loader, sampler, steps_per_epoch = _train_loader(cfg, train_set, dinfo, device)
        if device.type == "cuda" and cfg.channels_last:
            to_channels_last(system)
        loss_fn = TotalLoss(cfg.loss)
        optimizer = build_optimizer(cfg, system.parameters())
        scheduler = build_scheduler(cfg, optimizer, steps_per_epoch * cfg.optim.epochs)
        state = _restore(ckpt, cfg, system, optimizer, scheduler, dinfo)
        train_system = _for_training(system, cfg, dinfo, device)
        step_log = functools.partial(_append_step, cfg.run_dir) if dinfo.is_main else None

        epochs = tqdm(range(state.start_epoch, cfg.optim.epochs), desc=cfg.name, initial=state.start_epoch,
                      total=cfg.optim.epochs, disable=cfg.quiet or not dinfo.is_main)
        for epoch in epochs:
            sampler.set_epoch(epoch)
            if pairs is not None:
                pairs.set_epoch(epoch)
            parts, state.global_step = train_one_epoch(
                train_system, loss_fn, optimizer, scheduler, _Limited(loader, steps_per_epoch), device, epoch, cfg,
                step_log=step_log, global_step=state.global_step)
            record = {"epoch": epoch, "global_step": state.global_step, **{f"train_{k}": v for k, v in parts.items()}}
            if dinfo.is_main:
                _end_of_epoch(record, state, system, optimizer, scheduler, cfg, device, val_set)
                epochs.set_postfix(loss=f"{parts.get('total', float('nan')):.4f}", val=f"{state.best['val_miou']:.3f}")
            else:
                state.history.append(record)
            if dinfo.world_size > 1:
                dist.barrier()
        test_metrics = _test_and_summarise(cfg, state.best, device, started) if dinfo.is_main else {}
        return RunResult(cfg.run_dir, state.best["epoch"], state.best["val_miou"], test_metrics, state.history,
                         time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
        _release_lock(cfg.run_dir)


def _open_run_dir(cfg: ExperimentConfig, dinfo: DistInfo, device: torch.device, resume: bool,
                  allow_config_change: bool) -> dict | None:
    """Make and lock the run folder, load the checkpoint to resume (or None), write config and provenance."""
    run_dir = cfg.run_dir
    blocking = next((p for p in (run_dir, *run_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise NotADirectoryError(f"{blocking} is a file, expected a folder for the run {run_dir} "
                                 "(check output_dir)")
    if dinfo.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _take_lock(run_dir)
    ckpt = _load_for_resume(run_dir / "last.pt", cfg, allow_config_change) if resume else None
    if dinfo.is_main:
        if ckpt is None:
            save_config(cfg, run_dir / "config.yaml")
        write_provenance(run_dir, device, cfg)
    return ckpt


def _take_lock(run_dir: Path) -> None:
    """One writer per run folder: LOCK_FILE holds the writer's pid; a dead holder's lock is taken over."""
    path = run_dir / LOCK_FILE
    for _ in range(2):
        try:
            with open(path, "x") as file:
                file.write(f"{os.getpid()}\n")
            return
        except FileExistsError:
            text = path.read_text().strip() if path.is_file() else ""
            holder = int(text) if text.isdigit() else None
            if holder is not None and _alive(holder):
                raise BlockingIOError(errno.EAGAIN, f"the run folder is in use by process {holder}, which holds "
                                      "its lock; wait for that run to end (or stop it)", str(path)) from None
            warnings.warn(f"{path}: taking over the lock of process {text or '?'}, which is no longer running",
                          stacklevel=4)
            path.unlink(missing_ok=True)
    raise BlockingIOError(errno.EAGAIN, "another process took the run folder's lock first", str(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    return True


def _release_lock(run_dir: Path) -> None:
    path = run_dir / LOCK_FILE
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()


def _train_loader(cfg: ExperimentConfig, train_set: Dataset, dinfo: DistInfo,
                  device: torch.device) -> tuple[DataLoader, DistributedSampler, int]:
    """This rank's share of each global batch, its sampler, and the steps per epoch."""
    if cfg.optim.batch_size % dinfo.world_size:
        raise ValueError(f"optim.batch_size {cfg.optim.batch_size} is not divisible by {dinfo.world_size} processes")
    sampler = DistributedSampler(train_set, num_replicas=dinfo.world_size, rank=dinfo.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=cfg.optim.batch_size // dinfo.world_size, sampler=sampler,
                        drop_last=True, num_workers=cfg.data.num_workers, collate_fn=collate_clips,
                        pin_memory=device.type == "cuda")
    steps = len(loader) if cfg.optim.steps_per_epoch is None else min(len(loader), cfg.optim.steps_per_epoch)
    if steps == 0:
        raise ValueError(f"the training split has fewer clips ({len(train_set)}) than one batch ({cfg.optim.batch_size})")
    return loader, sampler, steps


def _restore(ckpt: dict | None, cfg: ExperimentConfig, system: AVSSystem, optimizer, scheduler,
             dinfo: DistInfo) -> _RunState:
    """Fresh, or the checkpoint's state; config.yaml is rewritten only once the checkpoint has loaded."""
    run_dir = cfg.run_dir
    if ckpt is None:
        if dinfo.is_main:
            (run_dir / "steps.jsonl").unlink(missing_ok=True)
        return _RunState()
    try:
        checkpoint.restore_weights(system, ckpt, run_dir / "last.pt")
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        reason = " ".join(str(err).split())[:500]
        raise ValueError(f"{run_dir / 'last.pt'}: the checkpoint does not fit the model this config builds "
                         f"({reason})") from None
    scheduler.load_state_dict(ckpt["scheduler"])
    # The config's lr and weight decay replace the checkpoint's (a no-op unless the config changed).
    o = cfg.optim
    scheduler.base_lrs = [o.lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group.update(initial_lr=o.lr, lr=o.lr * factor(scheduler.last_epoch), weight_decay=o.weight_decay)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    checkpoint.set_rng_state(ckpt["rng"])
    state = _RunState(ckpt["epoch"] + 1, ckpt["global_step"], ckpt["best"])
    if (run_dir / "metrics.jsonl").exists():
        state.history = [record for _, record in _read_jsonl(run_dir / "metrics.jsonl", "epoch")
                         if record["epoch"] < state.start_epoch]
    if dinfo.is_main:
        save_config(cfg, run_dir / "config.yaml")
        _truncate_steps_log(run_dir, state.global_step)
    return state


def _for_training(system: AVSSystem, cfg: ExperimentConfig, dinfo: DistInfo, device: torch.device) -> torch.nn.Module:
    """SyncBatchNorm + DDP over several processes (batch statistics of the global batch); compiled on CUDA."""
    train_system: torch.nn.Module = system
    if dinfo.world_size > 1 and device.type == "cuda" and not cfg.freeze_bn:
        train_system = torch.nn.SyncBatchNorm.convert_sync_batchnorm(system)
    if dinfo.world_size > 1:
        train_system = torch.nn.parallel.DistributedDataParallel(
            train_system, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False)
    if cfg.compile and device.type == "cuda":
        train_system = torch.compile(train_system)
    return train_system


def _end_of_epoch(record: dict, state: _RunState, system: AVSSystem, optimizer, scheduler,
                  cfg: ExperimentConfig, device: torch.device, val_set: Dataset) -> None:
    """Validate when due, keep best.pt by val mIoU, always write last.pt and the epoch logs (JSON lines, CSV)."""
    epoch = record["epoch"]
    if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.optim.epochs:
        val = evaluate_system(system, cfg, "val", device, diagnostics=cfg.val_diagnostics, dataset=val_set)
        record.update({f"val_{k}": float(val[k]) for k in VAL_METRICS if k in val})
        if record["val_miou"] > state.best["val_miou"]:
            state.best = {"epoch": epoch, **{k: v for k, v in record.items() if k.startswith("val_")}}
            checkpoint.atomic_torch_save(_checkpoint(system, cfg, epoch, state.global_step, state.best),
                                         cfg.run_dir / "best.pt")
    state.history.append(record)
    checkpoint.atomic_torch_save(_checkpoint(system, cfg, epoch, state.global_step, state.best, optimizer, scheduler),
                                 cfg.run_dir / "last.pt")
    history = state.history
    write_text_atomically(cfg.run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    keys = sorted({k for h in history for k in h})
    lines = [",".join(keys)] + [",".join(str(h.get(k, "")) for k in keys) for h in history]
    write_text_atomically(cfg.run_dir / "metrics.csv", "\n".join(lines) + "\n")


def _test_and_summarise(cfg: ExperimentConfig, best: dict, device: torch.device, started: float) -> dict[str, Any]:
    """Test the checkpoint val chose, once (the val-only probes never do), and write summary.json."""
    test_metrics: dict[str, Any] = {}
    if cfg.evaluate_test:
        best_system, _ = load_system(cfg.run_dir / "best.pt", device)
        test_set = _split_with_features(cfg, best_system, "test", device)
        test_metrics = evaluate_system(best_system, cfg, "test", device, diagnostics=True, dataset=test_set,
                                       out_dir=cfg.run_dir / "test")
    summary = {"name": cfg.name, "seed": cfg.seed, "best_epoch": best["epoch"],
               "best_val_miou": best["val_miou"], "seconds": time.perf_counter() - started,
               **{k: v for k, v in best.items() if k.startswith("val_") and k != "val_miou"},
               **{f"test_{k}": v for k, v in test_metrics.items() if isinstance(v, int | float)}}
    write_text_atomically(cfg.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return test_metrics


def _training_set(cfg: ExperimentConfig, system: AVSSystem,
                  device: torch.device) -> tuple[Dataset, CounterfactualPairs | None]:
    """The training split as the loader reads it (with cached frozen-encoder outputs when
    `cfg.feature_cache`), and its counterfactual pairs (or None)."""
    train_set: Dataset = kept_in_memory(cfg, build_dataset(cfg, "train"))
    folder = features.feature_cache_folder(cfg.data.cache_dir, cfg.output_dir)
    cached = features.frozen_features(system, train_set, folder, device) if cfg.feature_cache else None
    fed = as_fed(cfg, train_set)
    pairs = fed if isinstance(fed, CounterfactualPairs) else None
    return (fed if cached is None else features.WithFrozenFeatures(fed, cached)), pairs


def _split_with_features(cfg: ExperimentConfig, system: AVSSystem, split: str, device: torch.device) -> Dataset:
    dataset = kept_in_memory(cfg, build_dataset(cfg, split))
    folder = features.feature_cache_folder(cfg.data.cache_dir, cfg.output_dir)
    return features.with_frozen_features(system, dataset, folder, device) if cfg.feature_cache else dataset


@dataclass
class _Limited:
    """The first `steps` batches of `loader`, with a length (for tqdm)."""

    loader: DataLoader
    steps: int

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(self.loader, self.steps)


def read_history(run_dir: str | Path) -> list[dict]:
    return [record for _, record in _read_jsonl(Path(run_dir) / "metrics.jsonl", "epoch")]


def read_steps(run_dir: str | Path) -> list[dict]:
    return [record for _, record in _read_jsonl(Path(run_dir) / "steps.jsonl", "global_step")]
