"""The report's grid: train each (method, seed) once, then read the files the runs leave behind
(summary.json, steps.jsonl, test/*.csv), so the results can be studied without a model."""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from avs_lib.config import RESUME_FREE_KEYS, config_from_dict, to_dict
from avs_lib.configtools import flatten
from avs_lib.data.categories import SPLITS
from avs_lib.data.errors import DataFormatError
from avs_lib.datatools.profiles import METHODS
from avs_lib.engine import provenance
from avs_lib.report.grids import BASELINE, GRIDS, LADDER, PROPOSED, Grid
from avs_lib.report.runs import data_change, read_provenance, run_config


def grid_for(profile: str, methods: list[str] | None = None, seeds: list[int] | None = None) -> Grid:
    """The profile's default grid, or the methods/seeds given (which then replace it)."""
    default = GRIDS.get(profile)
    if default is None and (methods is None or seeds is None):
        raise ValueError(f"profile {profile!r} has no default grid (its runs take hours on real data); pass METHODS "
                         'and SEEDS explicitly (report: --methods tpavi thesis --seeds 0; make: METHODS="tpavi thesis" '
                         "SEEDS=0)")
    unknown = [m for m in methods or () if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
    picked_seeds = tuple(int(s) for s in seeds) if seeds is not None else default.seeds
    if (methods is not None and not methods) or not picked_seeds:
        raise ValueError("a grid needs at least one method and one seed")
    if methods is None and seeds is None:  # the profile's own grid, its headline seeds included
        return default
    if methods is not None:  # given methods replace the default, its ablations, extras and probes
        return Grid(tuple(methods), picked_seeds)
    ablation_seeds = (tuple(s for s in default.ablation_seeds if s in picked_seeds) or picked_seeds[:1]
                      if default.ablations and default.ablation_seeds is not None else None)
    return Grid(default.methods, picked_seeds, default.ablations, ablation_seeds, default.extras, default.probes)


# Settings that change where or how fast a run goes, not what it computes (the data root is
# compared by the folder it leads to).
_NOT_COMPARED = RESUME_FREE_KEYS | {"data.root"}


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Dotted keys that differ between two config dicts, ignoring where and how fast a run goes."""
    from avs_lib.engine.train import config_changes

    differ = [key for key in config_changes(saved, wanted, absent=None) if key != "data.root"]
    root_a, root_b = flatten(saved).get("data.root"), flatten(wanted).get("data.root")
    if root_a is None or root_b is None or Path(root_a).resolve() != Path(root_b).resolve():
        differ.append("data.root")
    return differ


def _run_status(run_dir: Path, wanted: dict[str, Any], code: str, data: dict[str, Any],
                reuse_stale: bool = False) -> tuple[str, str]:
    """('done' | 'partial' (resumable) | 'new' | 'stale', a note): reused or resumed only with the same
    config, data fingerprint and code version (other code too when `reuse_stale`); a stale run is retrained."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return "new", ""
    differences = config_differences(yaml.safe_load(config_path.read_text()) or {}, wanted)
    record = read_provenance(run_dir) or {}
    made_by = record.get("code_version", "unknown (no provenance.json)")
    other_code = f"made by other code (code version {made_by}, now {code})" if made_by != code else None
    # A run from before data fingerprints is kept with the other code's runs.
    changed = None if reuse_stale and record.get("data") is None else data_change(record.get("data"), data)
    reason = (f"trained with another config (differs in {', '.join(differences)})" if differences
              else f"{other_code} (keep it with reuse_stale=True, --keep-stale-runs or KEEP_STALE=1)"
              if other_code is not None and not reuse_stale else changed)
    if reason is not None:
        warnings.warn(f"retraining {run_dir.name}: {reason}; its old files in {run_dir} are replaced", stacklevel=2)
        return "stale", ""
    note = f"same config and data, {other_code}, kept as asked (reuse_stale)" if other_code else "same config and data"
    return ("done" if (run_dir / "summary.json").is_file() else "partial"), note


WarningRecord = tuple[type[Warning], str, str, int]  # category, message, file, line: picklable


def _records(caught: list[warnings.WarningMessage]) -> list[WarningRecord]:
    return [(w.category, str(w.message), w.filename, w.lineno) for w in caught]


def _warn_once(records: list[WarningRecord], seen: set[tuple[type, str]]) -> None:
    """Re-issue the warnings no earlier run of the grid gave: the "once" filter cannot, since
    every `catch_warnings` inside torch resets its memory."""
    for category, message, filename, lineno in records:
        if (category, message) not in seen:
            seen.add((category, message))
            warnings.warn_explicit(message, category, filename, lineno)


def _fit(cfg: Any, resume: bool) -> list[WarningRecord]:
    """One run; returns the warnings it gave."""
    from avs_lib.engine.train import fit

    (cfg.run_dir / "summary.json").unlink(missing_ok=True)  # a summary must never outlive its run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cfg, resume=resume)
    return _records(caught)


def _fit_in_worker(cfg_dict: dict[str, Any], resume: bool, threads: int) -> list[WarningRecord]:
    """One run in a worker process with `threads` CPU threads."""
    import torch

    torch.set_num_threads(threads)
    return _fit(config_from_dict(cfg_dict), resume)


# Resident memory of the largest cpu-profile run (thesis_shared_trainable), rounded up.
RUN_MEMORY_BYTES = 2 * 2**30


def _expected_cost(cfg: Any) -> int:
    """A rank of run length, to start long runs first (a trained ResNet, a crop trunk and a second
    audio pass each add work); the results do not depend on the order."""
    return 4 * (not cfg.model.freeze_backbone) + 2 * cfg.loss.crop_losses + (cfg.loss.counterfactual > 0)


def default_jobs(device: str = "auto") -> int:
    """Runs at a time: on the CPU one per core as memory allows (each run has its profile's
    `threads`), on a GPU 1."""
    from avs_lib.engine.system import select_device

    if select_device(device).type != "cpu":
        return 1
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: trust the core count
        return cores
    return max(1, min(cores, memory // RUN_MEMORY_BYTES))


@dataclass(frozen=True)
class RunCost:
    """What one run of a config costs in seconds, measured in a short warm-up."""

    train_step: float  # one optimiser step
    eval_batch: float = 0.0  # one batch of validation or test (no gradients)
    setup: float = 0.0  # reading the splits and weight files and building the model, once per run
    checkpoint: float = 0.0  # writing one checkpoint (weights and optimiser state)
    reload: float = 0.0  # rebuilding the system from its best.pt for the test, once per run
    feature_key: float = 0.0  # keying one split's cached frozen-encoder features (weights digest, files)
    feature_clip: float = 0.0  # computing one clip's frozen-encoder features (once per grid: shared cache)


@dataclass(frozen=True)
class RunWork:
    """How much one run does (`train.fit`'s loop, counted)."""

    train_steps: int
    eval_batches: int = 0
    checkpoints: int = 0  # last.pt after every epoch, best.pt after every validation (at most)
    clips: int = 0  # clips of the three splits, whose frozen-encoder features the grid caches once


@dataclass(frozen=True)
class GridEstimate:
    """A grid's expected duration, from a warm-up of each distinct config."""

    seconds: float
    runs: int
    jobs: int
    step_seconds: dict[str, float]  # measured seconds per training step, by method name
    run_seconds: dict[tuple[str, int], float] = field(default_factory=dict)  # one run's, by (method, seed)

    def text(self) -> str:
        steps = ", ".join(f"{name} {value:.2f} s" for name, value in self.step_seconds.items())
        return (f"estimate: about {duration_text(self.seconds)} for {self.runs} run(s) on {self.jobs} job(s) "
                f"(from a warm-up; seconds per training step: {steps})")


def duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_grid_seconds(cfgs: list[Any], measure: Any, work: Any, jobs: int = 1,
                          start_up: float = 0.0) -> GridEstimate:
    """Expected duration of `cfgs`: `measure(cfg)` (a `RunCost`, once per distinct config) times
    `work(cfg)` (a `RunWork`), laid out on `jobs` workers as `_train_runs` starts them."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    measured: dict[str, RunCost] = {}
    per_method: dict[str, float] = {}
    runs = []  # (seconds, frozen encoders, seconds to cache their features), in start order
    run_seconds: dict[tuple[str, int], float] = {}
    for cfg in sorted(cfgs, key=lambda c: -_expected_cost(c)):  # stable, as _train_runs sorts
        key = json.dumps({k: v for k, v in flatten(to_dict(cfg)).items() if k not in _NOT_COMPARED | {"seed", "name"}},
                         sort_keys=True, default=str)  # the config without what differs between seeds
        if key not in measured:
            measured[key] = measure(cfg)
            per_method.setdefault(cfg.name, measured[key].train_step)
        cost, done = measured[key], work(cfg)
        seconds = (cost.setup + cost.reload + cost.train_step * done.train_steps + cost.feature_key * len(SPLITS)
                   + cost.eval_batch * done.eval_batches + cost.checkpoint * done.checkpoints)
        runs.append((seconds, _frozen_encoders(cfg), cost.feature_clip * done.clips))
        run_seconds[cfg.name, cfg.seed] = seconds
    parallel = max(1, min(jobs, len(cfgs)))
    return GridEstimate(_makespan(runs, parallel) + start_up, len(cfgs), parallel, per_method, run_seconds)


def _makespan(runs: list[tuple[float, tuple, float]], jobs: int) -> float:
    """When the last run ends, each on the first free worker; a run that starts before its
    encoders' features are cached computes them too."""
    free = [0.0] * jobs  # when each worker is free
    cached: dict[tuple, float] = {}  # frozen encoders -> when their features are on disk
    for seconds, encoders, caching in runs:
        worker = free.index(min(free))
        start = free[worker]
        if caching and start < cached.get(encoders, math.inf):
            seconds += caching
            cached[encoders] = min(cached.get(encoders, math.inf), start + caching)
        free[worker] = start + seconds
    return max(free)


def _frozen_encoders(cfg: Any) -> tuple:
    """What a run's cached encoder features depend on (`engine.features.cache_key`)."""
    model = cfg.model
    random_audio = not (model.vggish_weights or model.audio_weights)  # a random start differs by seed
    return (cfg.data.root, cfg.data.image_size, cfg.data.audio, cfg.seed if random_audio else None,
            model.backbone, model.freeze_backbone, model.resnet_weights, model.audio_encoder,
            model.vggish_weights, model.audio_weights)


# The test pass of `train.fit` runs the true, silent and swapped audio (evaluate_system diagnostics).
TEST_PASSES = 3


def run_work(cfg: Any) -> RunWork:
    """Steps and evaluation batches of one run as `train.fit` does them."""
    from avs_lib.engine.datasets import as_fed, build_dataset

    splits = {split: build_dataset(cfg, split) for split in SPLITS}  # each split read once
    batches = len(as_fed(cfg, splits["train"])) // cfg.optim.batch_size
    if cfg.optim.steps_per_epoch is not None:
        batches = min(batches, cfg.optim.steps_per_epoch)
    epochs = cfg.optim.epochs
    validations = len({e for e in range(epochs) if (e + 1) % cfg.eval_every == 0} | {epochs - 1})
    val, test = (math.ceil(len(splits[split]) / cfg.eval_batch_size) for split in ("val", "test"))
    clips = sum(len(dataset) for dataset in splits.values())
    return RunWork(epochs * batches, validations * val + TEST_PASSES * test, epochs + validations, clips)


def measure_run_cost(cfg: Any, steps: int = 2, threads: int | None = None) -> RunCost:
    """Time `train.fit`'s parts with the CPU threads the run will have: start-up, one untimed step
    (allocations), then `steps` training steps and evaluation batches (scaled to `eval_batch_size`),
    checkpoints and feature caching."""
    import torch

    from avs_lib.engine import train
    from avs_lib.engine.checkpoint import atomic_torch_save, weight_entries
    from avs_lib.engine.datasets import build_dataset
    from avs_lib.engine.system import AVSSystem, load_system, select_device
    from avs_lib.losses import TotalLoss

    cfg = config_from_dict({**to_dict(cfg), "quiet": True})
    device = select_device(cfg.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda device: None

    def timed(work) -> tuple[float, Any]:
        sync(device)
        started = time.perf_counter()
        result = work()
        sync(device)
        return time.perf_counter() - started, result

    def build() -> Any:
        for split in SPLITS:
            build_dataset(cfg, split)
        system = AVSSystem(cfg).to(device)
        if device.type == "cuda" and cfg.channels_last:
            train.to_channels_last(system)
        return system

    def evaluate() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                             enabled=cfg.amp and device.type == "cuda"):
            for batch in rest:
                system(train.move_batch(batch, device))

    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads or before)
    try:
        setup, system = timed(build)
        batches, feature_key, feature_clip = _warm_up_batches(cfg, system, device, steps + 1)
        optimizer = train.build_optimizer(cfg, system.parameters())
        scheduler = train.build_scheduler(cfg, optimizer, len(batches))
        loss_fn = TotalLoss(cfg.loss)
        train.train_one_epoch(system, loss_fn, optimizer, scheduler, batches[:1], device, 0, cfg)
        rest = batches[1:] or batches[:1]
        step, _ = timed(lambda: train.train_one_epoch(system, loss_fn, optimizer, scheduler, rest, device, 0, cfg))
        system.eval()
        per_eval_batch = timed(evaluate)[0] / len(rest) * cfg.eval_batch_size / cfg.optim.batch_size
        with tempfile.TemporaryDirectory() as folder:  # one checkpoint as `train.fit` writes it, then reloaded
            path, started = Path(folder) / "last.pt", time.perf_counter()
            atomic_torch_save({"config": to_dict(cfg), **weight_entries(system, cfg),
                               "optimizer": optimizer.state_dict()}, path)
            saved = time.perf_counter()
            load_system(path, device)
            reload = time.perf_counter() - saved
        return RunCost(step / len(rest), per_eval_batch, setup, saved - started, reload, feature_key, feature_clip)
    finally:
        torch.set_num_threads(before)


def _warm_up_batches(cfg: Any, system: Any, device: Any, count: int) -> tuple[list, float, float]:
    """`count` training batches as `train.fit` feeds them (cached frozen features included), and
    the seconds to key one split's feature cache and to compute one clip's features."""
    from torch.utils.data import DataLoader

    from avs_lib.data import collate_clips
    from avs_lib.engine.datasets import ClipSubset, as_fed, build_dataset
    from avs_lib.engine.features import WithFrozenFeatures, cache_key, frozen_features, frozen_parts

    clips = ClipSubset(build_dataset(cfg, "train"), count * cfg.optim.batch_size)
    parts = frozen_parts(system)
    cached = cfg.feature_cache and parts.any
    feature_key = feature_clip = 0.0
    with tempfile.TemporaryDirectory() as folder:
        train_set = as_fed(cfg, clips)
        if cached:
            started = time.perf_counter()
            cache_key(system, parts, clips)
            feature_key = time.perf_counter() - started
            features = frozen_features(system, clips, folder, device)  # keys again, then computes
            feature_clip = max(time.perf_counter() - started - 2 * feature_key, 0.0) / len(clips)
            train_set = WithFrozenFeatures(train_set, features)
        loader = DataLoader(train_set, batch_size=cfg.optim.batch_size, shuffle=False, drop_last=True,
                            num_workers=0, collate_fn=collate_clips)
        batches = list(islice(loader, count))  # copied out of the cache before it is deleted
    if not batches:
        raise ValueError(f"the training split of {cfg.data.root} has fewer clips than one batch")
    return batches, feature_key, feature_clip


class _RunProgress:
    """One plain line per finished run with the time left (papermill shows it; a tqdm widget not).
    With the warm-up's seconds per run (`GridEstimate.run_seconds`) the time left weighs each run by
    its expected length: the grid starts its longest runs first, so counting runs overstates it."""

    def __init__(self, total: int, done: int, expected: dict[tuple[str, int], float] | None = None):
        self.total, self.done, self.done_before = total, done, done
        self.expected, self.expected_done = dict(expected or {}), 0.0
        self.started = time.perf_counter()

    def finished(self, cfg: Any) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        self.expected_done += self.expected.pop((cfg.name, cfg.seed), 0.0)
        if self.expected_done > 0:  # the time taken so far, scaled by the work still to do
            left = elapsed * sum(self.expected.values()) / self.expected_done
        else:
            left = elapsed / (self.done - self.done_before) * (self.total - self.done)
        print(f"[runs] {self.done}/{self.total} done ({cfg.name} seed {cfg.seed}); "
              f"{duration_text(elapsed)} so far, about {duration_text(left)} left", flush=True)


def train_grid(profile: str, grid: Grid, data_root: str | Path, runs_dir: str | Path, device: str = "auto",
               weights: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None, jobs: int = 1,
               reuse_stale: bool = False, estimate: bool = False) -> pd.DataFrame:
    """Train every run of `grid` as `python -m avs_lib train` would, `jobs` at a time, reusing finished
    runs, resuming interrupted ones (`_run_status`); `estimate` first prints a warm-up's estimate."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    pairs = grid.pairs
    code = provenance.code_version()
    cfgs = [run_config(profile, method, seed, data_root, runs_dir, device=device, weights=weights,
                       overrides=overrides, quiet=True) for method, seed in pairs]
    fingerprint = functools.cache(provenance.data_fingerprint)  # one per kind of read (with or without crop labels)
    todo = []
    for cfg in cfgs:
        status, note = _run_status(cfg.run_dir, to_dict(cfg), code, fingerprint(*provenance.data_read_by(cfg)),
                                   reuse_stale)
        if status == "done":
            print(f"reused {cfg.run_dir.name}: {note} ({cfg.run_dir.resolve()})", flush=True)
            continue
        if status == "partial":
            print(f"resuming {cfg.run_dir.name}: {note} ({cfg.run_dir.resolve()})", flush=True)
        todo.append((cfg, status == "partial"))
    seen: set[tuple[type, str]] = set()  # the warnings shown so far, each once per grid
    expected = None
    if estimate and todo:
        with warnings.catch_warnings(record=True) as caught:  # the warm-up builds every config too
            warnings.simplefilter("always")
            grid_estimate = _estimate(todo, jobs)
        _warn_once(_records(caught), seen)
        print(grid_estimate.text(), flush=True)
        expected = grid_estimate.run_seconds
    _train_runs(todo, jobs, _RunProgress(len(pairs), len(pairs) - len(todo), expected), seen)
    return pd.DataFrame([_summary_row(cfg.run_dir) for cfg in cfgs])


def _estimate(todo: list[tuple[Any, bool]], jobs: int) -> GridEstimate:
    """The estimate of the runs to train, plus the workers' start-up when they train in workers."""
    threads, start_up = None, 0.0
    if jobs > 1 and len(todo) > 1:  # in workers, each with its share of the CPU threads
        threads, started = max(1, (os.cpu_count() or 1) // jobs), time.perf_counter()
        subprocess.run([sys.executable, "-c", "import avs_lib.engine.train"], check=False, capture_output=True)
        start_up = time.perf_counter() - started
    return estimate_grid_seconds([c for c, _ in todo], lambda cfg: measure_run_cost(cfg, threads=threads),
                                 run_work, jobs, start_up=start_up)


def _train_runs(todo: list[tuple[Any, bool]], jobs: int, progress: _RunProgress,
                seen: set[tuple[type, str]]) -> None:
    """Train the (config, resume) runs here, or `jobs` at a time in spawned workers, longest first;
    a failed run stops the rest, naming the run."""
    if jobs == 1 or len(todo) <= 1:
        for cfg, resume in todo:
            _warn_once(_fit(cfg, resume), seen)
            progress.finished(cfg)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_fit_in_worker, to_dict(cfg), resume, threads): cfg
                   for cfg, resume in sorted(todo, key=lambda run: -_expected_cost(run[0]))}
        for future in as_completed(futures):
            cfg = futures[future]
            try:
                messages = future.result()  # the run's warnings
            except Exception as error:
                for other in futures:
                    other.cancel()
                raise RuntimeError(f"run {cfg.name} seed {cfg.seed} failed in a worker: {error}") from error
            _warn_once(messages, seen)
            progress.finished(cfg)


RESULT_COLUMNS = ["method", "seed", "best_epoch", "best_val_miou", "test_miou", "test_f_score_official",
                  "test_f_score_batch_size", "test_f_score_split", "test_miou_silent", "test_miou_swapped",
                  "test_listening_rate", "test_following_rate", "test_listening_frames", "test_frames", "seconds"]


def _summary_row(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"run summary not found: {path} (the run has not finished)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataFormatError(path, f"not valid JSON ({error})") from None
    for key in ("name", "seed"):
        if summary.get(key) is None:
            raise DataFormatError(path, f"no {key!r} field")
    return {"method": summary["name"], **{k: v for k, v in summary.items() if k != "name"}, "run_dir": str(run_dir)}


def _run_dirs(runs_dir: str | Path, marker: str) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory not found: {runs_dir} (train first: 03_training)")
    depth = len(Path(marker).parts)  # the run directory is this many levels above the marker
    return sorted(p.parents[depth - 1] for p in runs_dir.glob(f"*/{marker}"))


def collect_results(runs_dir: str | Path, pairs: list[tuple[str, int]] | None = None) -> pd.DataFrame:
    """One row per finished run (summary.json), in `profiles.METHODS` order then seed; optionally only
    a grid's (method, seed) `pairs`."""
    rows = [_summary_row(d) for d in _run_dirs(runs_dir, "summary.json")]
    rows = [r for r in rows if pairs is None or (r["method"], r["seed"]) in pairs]
    if not rows:
        raise FileNotFoundError(f"no finished runs (*/summary.json) under {runs_dir}")
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=RESULT_COLUMNS + [c for c in frame.columns if c not in RESULT_COLUMNS])
    order = {m: i for i, m in enumerate(METHODS)}
    frame["_order"] = frame["method"].map(lambda m: order.get(m, len(order)))
    return frame.sort_values(["_order", "method", "seed"]).drop(columns="_order").reset_index(drop=True)


def _format(mean: float, std: float, n: int, digits: int) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    if n < 2 or std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarise(df: pd.DataFrame, metrics: list[str], digits: int = 3) -> pd.DataFrame:
    """Per method: n_seeds, then per metric `{metric}_mean`, `{metric}_std` (ddof=1) and
    `{metric}` as text ("0.612 ± 0.013")."""
    missing = [c for c in ["method", "seed", *metrics] if c not in df.columns]
    if missing:
        raise ValueError(f"summarise: missing column(s) {missing}; the table has {list(df.columns)}")
    grouped = df.groupby("method", sort=False)
    out = grouped["seed"].nunique().rename("n_seeds").to_frame()
    for metric in metrics:
        out[f"{metric}_mean"], out[f"{metric}_std"] = grouped[metric].mean(), grouped[metric].std(ddof=1)
        out[metric] = [_format(m, s, n, digits) for m, s, n in
                       zip(out[f"{metric}_mean"], out[f"{metric}_std"], out["n_seeds"], strict=True)]
    return out


RESULT_HEADERS = {
    "test_miou": "mIoU",
    "test_f_score_official": "F (official, batch {batch})",
    "test_f_score_split": "F (whole split)",
    "test_listening_rate": "listening rate",
    "test_following_rate": "follows audio",
    "test_miou_swapped": "mIoU, swapped audio",
    "test_miou_silent": "mIoU, silent audio",
}


def results_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method, "mean ± std" per metric, with readable headers."""
    summary = summarise(results, list(RESULT_HEADERS))
    batches = sorted(set(results["test_f_score_batch_size"].dropna().astype(int)))
    headers = {m: h.format(batch="/".join(map(str, batches)) or "?") for m, h in RESULT_HEADERS.items()}
    return summary[["n_seeds", *RESULT_HEADERS]].rename(columns={"n_seeds": "seeds", **headers})


def describe_methods(methods: list[str]) -> pd.DataFrame:
    """What each method changes relative to the profile (`profiles.METHODS`)."""
    changes = [", ".join(f"{k}={v}" for k, v in flatten(METHODS[m]).items()) or "(baseline)" for m in methods]
    return pd.DataFrame({"method": methods, "changes": changes})


def failure_pair(results: pd.DataFrame) -> tuple[str, str]:
    """(baseline, compared method) of the failure-case notebook: tpavi and thesis when both ran,
    else the first methods trained (the same one twice when only one was)."""
    trained = list(dict.fromkeys(results["method"]))
    if not trained:
        raise ValueError("no finished runs to show failure cases of")
    baseline = BASELINE if BASELINE in trained else trained[0]
    if PROPOSED in trained and PROPOSED != baseline:
        return baseline, PROPOSED
    others = [m for m in trained if m != baseline]
    return baseline, others[0] if others else baseline


def representative_run(results: pd.DataFrame, method: str, metric: str = "test_miou") -> str:
    """The run of `method` at the (lower) median `metric`, so pictures show neither its best nor worst seed."""
    rows = results[results["method"] == method].sort_values([metric, "seed"])
    if rows.empty:
        raise ValueError(f"no finished run of method {method!r}; have {sorted(set(results['method']))}")
    seed = int(rows["seed"].iloc[(len(rows) - 1) // 2])
    return f"{method}_seed{seed}"


def loss_curves(runs_dir: str | Path, methods: list[str] | None = None) -> pd.DataFrame:
    """Every run's steps.jsonl as (method, seed, global_step, term, value) rows: every column but
    epoch, step, global_step and lr is a loss term."""
    from avs_lib.engine.train import read_steps

    frames = []
    for run_dir in _run_dirs(runs_dir, "steps.jsonl"):
        method, seed = run_identity(run_dir)
        if methods is not None and method not in methods:
            continue
        steps = pd.DataFrame(read_steps(run_dir))
        if not steps.empty:
            terms = [c for c in steps.columns if c not in ("epoch", "step", "global_step", "lr")]
            long = steps.melt(id_vars=["global_step"], value_vars=terms, var_name="term", value_name="value")
            frames.append(long.assign(method=method, seed=seed)[["method", "seed", "global_step", "term", "value"]])
    if not frames:
        raise FileNotFoundError(f"no step logs (*/steps.jsonl) under {runs_dir}")
    return pd.concat(frames, ignore_index=True)


def run_identity(run_dir: Path) -> tuple[str, int]:
    """(method, seed) of a run, from its config.yaml."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    cfg = yaml.safe_load(path.read_text()) or {}
    return str(cfg.get("name")), int(cfg.get("seed", 0))


def read_test_tables(runs_dir: str | Path, file_name: str, runs: Sequence[str] | None = None) -> pd.DataFrame:
    """Each run's (every run's, or the named `runs`') test/`file_name`, with method and seed."""
    run_dirs = _run_dirs(runs_dir, f"test/{file_name}") if runs is None else [Path(runs_dir) / r for r in runs]
    frames = []
    for run_dir in run_dirs:
        if not (run_dir / "test" / file_name).is_file():
            raise FileNotFoundError(f"test results not found: {run_dir / 'test' / file_name}")
        method, seed = run_identity(run_dir)
        table = pd.read_csv(run_dir / "test" / file_name)
        if "category" in table.columns:  # MS3 has no classes: "" (read as NaN, which groupby drops)
            table["category"] = table["category"].fillna("")
        table.insert(0, "seed", seed)
        table.insert(0, "method", method)
        frames.append(table)
    if not frames:
        raise FileNotFoundError(f"no test/{file_name} under {runs_dir}")
    return pd.concat(frames, ignore_index=True)


def per_category(runs_dir: str | Path) -> pd.DataFrame:
    """Each run's test/per_category.csv, with method and seed; `iou` (= miou) for plot_per_category."""
    return read_test_tables(runs_dir, "per_category.csv").assign(iou=lambda table: table["miou"])


def per_clip(runs_dir: str | Path) -> pd.DataFrame:
    """Each run's test/per_clip.csv (name, category, iou, n_frames), with method and seed."""
    return read_test_tables(runs_dir, "per_clip.csv")


REPORTED_LABEL = "reported, not measured here"
# Published figures on the real AVSBench S4 test split (the AVSBench paper, the thesis write-up):
# for orientation only, our runs use other data, sizes and budgets.
REPORTED: dict[str, dict[str, Any]] = {
    "thesis_baseline": {"label": "thesis: baseline", "source": "thesis write-up, S4 test, ResNet-50 + TPAVI",
                        "miou": 0.679, "f_score": 0.79},
    "thesis_proposed": {"label": "thesis: + crop losses",
                        "source": "thesis write-up, S4 test, ResNet-50 + TPAVI + the three crop losses",
                        "miou": 0.726, "f_score": 0.8449},
    "avsbench_resnet50": {"label": "AVSBench paper: ResNet-50",
                          "source": "AVSBench paper (Zhou et al., ECCV 2022), S4 test, ResNet-50 + TPAVI",
                          "miou": 0.7279, "f_score": 0.848},
    "avsbench_pvt_v2": {"label": "AVSBench paper: PVT-v2",
                        "source": "AVSBench paper (Zhou et al., ECCV 2022), S4 test, PVT-v2 + TPAVI",
                        "miou": 0.787, "f_score": 0.879},
}


# The thesis' claim as a relative gain in S4 test mIoU (0.679 -> 0.726): the size of effect a
# verdict must be able to exclude or confirm (`stats.compare_to_baseline(claimed_gain=...)`).
THESIS_CLAIMED_GAIN = REPORTED["thesis_proposed"]["miou"] / REPORTED["thesis_baseline"]["miou"] - 1


def reported_table() -> pd.DataFrame:
    """REPORTED as a table, every row marked "reported, not measured here"."""
    rows = [{**values, "status": REPORTED_LABEL} for values in REPORTED.values()]
    return pd.DataFrame(rows).set_index("label")


def reference_lines(profile: str) -> dict[str, float]:
    """Reported mIoUs to draw beside our bars, on the real data (`paper`) only: elsewhere they mislead."""
    return {f"{v['label']} (reported)": v["miou"] for v in REPORTED.values()} if profile == "paper" else {}


def recipe_ladder(runs_dir: str | Path, rungs: tuple[str, ...] = LADDER, chosen: str = "tpavi") -> pd.DataFrame:
    """Each trained rung's val numbers (seed 0, best epoch) beside its start, read from its own config: the
    same objective and budget from each start."""
    rows = []
    for rung in rungs:
        run_dir = Path(runs_dir) / f"{rung}_seed0"
        if not (run_dir / "summary.json").is_file():
            continue
        model = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("model", {})
        summary = _summary_row(run_dir)
        rows.append({"rung": rung, "start": "pretrained" if model.get("resnet_weights") else "random",
                     "gate": float(model.get("fusion_gate_init", 0.0)),
                     "backbone": "frozen" if model.get("freeze_backbone") else "trained",
                     "val_miou": summary.get("best_val_miou"),
                     "val_listening_rate": summary.get("val_listening_rate", math.nan),
                     "val_following_rate": summary.get("val_following_rate", math.nan),
                     "best_epoch": summary.get("best_epoch"), "chosen": rung == chosen})
    return pd.DataFrame(rows, columns=["rung", "start", "gate", "backbone", "val_miou", "val_listening_rate",
                                       "val_following_rate", "best_epoch", "chosen"]).set_index("rung")
