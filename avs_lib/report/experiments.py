"""The report's experiments: which runs, running them once, and the tables the notebooks show.

`train_grid` trains every (method, seed) of a grid with `train.fit`, skipping runs that already
finished, so a rerun of the training notebook costs nothing. Everything else reads the files a
run leaves behind (summary.json, steps.jsonl, test/*.csv), never a model: the results can be
studied on a machine that did not train them.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm.auto import tqdm

from avs_lib.config import METHODS, RESUME_FREE_KEYS, Grid, get_profile, to_dict
from avs_lib.configtools import flatten
from avs_lib.data.categories import SPLITS
from avs_lib.data.errors import DataFormatError
from avs_lib.engine.provenance import (
    code_version,
    data_change,
    data_fingerprint,
    data_read_by,
    read_provenance,
)
from avs_lib.engine.runs import run_config

# ---------------------------------------------------------------- what is run


BASELINE, PROPOSED, COUNTERFACTUAL = "tpavi", "thesis", "counterfactual"


def grid_for(profile: str, methods: list[str] | None = None, seeds: list[int] | None = None) -> Grid:
    """The profile's default grid, or the methods/seeds given (which then replace it)."""
    default = get_profile(profile).grid
    if default is None and (methods is None or seeds is None):
        raise ValueError(
            f"profile {profile!r} has no default grid (its runs take hours on real data); "
            "pass METHODS and SEEDS explicitly (report: --methods tpavi thesis --seeds 0; make: "
            'METHODS="tpavi thesis" SEEDS=0)'
        )
    if methods is not None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
        picked_methods: tuple[str, ...] = tuple(methods)
        ablations: tuple[str, ...] = ()
        extras: tuple[str, ...] = ()
        probes: tuple[str, ...] = ()
    else:
        picked_methods, ablations, extras = default.methods, default.ablations, default.extras
        probes = default.probes
    picked_seeds = tuple(int(s) for s in seeds) if seeds is not None else default.seeds
    if not picked_methods or not picked_seeds:
        raise ValueError("a grid needs at least one method and one seed")
    ablation_seeds = None
    if ablations and default.ablation_seeds is not None:
        ablation_seeds = tuple(s for s in default.ablation_seeds if s in picked_seeds) or picked_seeds[:1]
    if methods is None and seeds is None:  # the profile's own grid, its headline seeds included
        return default
    return Grid(picked_methods, picked_seeds, ablations, ablation_seeds, extras, probes)


# ---------------------------------------------------------------- running


# Settings that change where or how fast a run goes, not what it computes.
# The keys a resume may change, and the data root (compared by the folder it leads to, below).
_NOT_COMPARED = RESUME_FREE_KEYS | {"data.root"}


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dicts, ignoring where/how fast it ran
    (the data root counts when the two paths lead to different folders)."""
    from avs_lib.engine.train import config_changes

    differ = [key for key in config_changes(saved, wanted, absent=None) if key != "data.root"]
    root_a, root_b = flatten(saved).get("data.root"), flatten(wanted).get("data.root")
    if root_a is None or root_b is None or Path(root_a).resolve() != Path(root_b).resolve():
        differ.append("data.root")
    return differ


def _run_status(run_dir: Path, wanted: dict[str, Any], code: str, data: dict[str, Any],
                reuse_stale: bool = False) -> str:
    """'done' (reusable summary), 'partial' (resumable), 'new', or 'stale' (train again from scratch).

    A run is reused or resumed only when its config, the data it read (`data`, this run's
    `provenance.data_fingerprint`) and its code version (`provenance.code_version`) match. A run
    made by other code, or with no provenance record, is trained again unless `reuse_stale`; a run
    with another config or other data always is: it is another experiment under the same name.
    Each retraining is one warning naming the run, its folder and why.
    """
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return "new"
    differences = config_differences(yaml.safe_load(config_path.read_text()) or {}, wanted)
    record = read_provenance(run_dir) or {}
    made_by = record.get("code_version", "unknown (no provenance.json)")
    other_code = f"made by other code (code version {made_by}, now {code})" if made_by != code else None
    changed = data_change(record.get("data"), data)
    if changed is not None and record.get("data") is None and reuse_stale:
        changed = None  # a run from before fingerprints, kept with the other code's runs
    reason = None
    if differences:
        reason = f"trained with another config (differs in {', '.join(differences)})"
    elif other_code is not None and not reuse_stale:
        reason = f"{other_code} (keep it with reuse_stale=True, --keep-stale-runs or KEEP_STALE=1)"
    elif changed is not None:
        reason = changed
    elif other_code is not None:
        warnings.warn(f"{run_dir}: {other_code}; kept as asked (reuse_stale)", stacklevel=2)
    if reason is not None:
        warnings.warn(f"retraining {run_dir.name}: {reason}; its old files in {run_dir} are replaced", stacklevel=2)
        return "stale"
    return "done" if (run_dir / "summary.json").is_file() else "partial"


WarningRecord = tuple[type[Warning], str, str, int]  # category, message, file, line: picklable


def _records(caught: list[warnings.WarningMessage]) -> list[WarningRecord]:
    return [(w.category, str(w.message), w.filename, w.lineno) for w in caught]


def _warn_once(records: list[WarningRecord], seen: set[tuple[type, str]]) -> None:
    """Re-issue the warnings of a run that no earlier run of the grid gave ("no pretrained
    weights given" once per grid, not once per run). The "once" filter cannot do this: every
    `catch_warnings` inside torch resets its memory."""
    for category, message, filename, lineno in records:
        if (category, message) not in seen:
            seen.add((category, message))
            warnings.warn_explicit(message, category, filename, lineno)


def _forget_summary(run_dir: Path) -> None:
    """A summary must never outlive the run it describes: removed when (and only when) that run
    starts training again, so an interrupted grid leaves the other runs' summaries alone."""
    (run_dir / "summary.json").unlink(missing_ok=True)


def _fit_in_worker(cfg_dict: dict[str, Any], resume: bool, threads: int) -> list[WarningRecord]:
    """One run in a worker process with `threads` CPU threads; returns the warnings it gave."""
    import torch

    from avs_lib.config import config_from_dict
    from avs_lib.engine.train import fit

    torch.set_num_threads(threads)
    cfg = config_from_dict(cfg_dict)
    _forget_summary(cfg.run_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cfg, resume=resume)
    return _records(caught)


# Resident memory one cpu-profile run takes at most (thesis_shared_trainable, the largest),
# rounded up; the report starts no more runs at once than the machine's memory holds.
RUN_MEMORY_BYTES = 2 * 2**30


def _expected_cost(cfg: Any) -> int:
    """A rank of how long a run takes, for starting the long ones first (so that no worker is left
    with a long run at the end while the others idle); the results do not depend on the order.
    A trained ResNet runs forward and backward every step (no feature cache), a crop network adds
    its own trunk, a second audio pass adds fusion and decoder again."""
    return 4 * (not cfg.model.freeze_backbone) + 2 * cfg.loss.crop_losses + (cfg.loss.counterfactual > 0)


def default_jobs(device: str = "auto") -> int:
    """Runs at a time: on the CPU one per core (each run uses the `threads` its profile fixes, 1
    for smoke and cpu, so its numbers do not depend on the machine), as many as memory holds;
    on a GPU 1."""
    from avs_lib.engine.system import select_device

    if select_device(device).type != "cpu":
        return 1
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: trust the core count
        return cores
    return max(1, min(cores, memory // RUN_MEMORY_BYTES))


# ---------------------------------------------------------------- how long a grid takes


@dataclass(frozen=True)
class RunCost:
    """What one run of a config costs, measured in a short warm-up (seconds)."""

    train_step: float  # one optimiser step
    eval_batch: float = 0.0  # one batch of validation or test (no gradients)
    setup: float = 0.0  # reading the splits and weight files and building the model, once per run
    checkpoint: float = 0.0  # writing one checkpoint (weights and optimiser state)
    reload: float = 0.0  # rebuilding the system from its best.pt for the test, once per run
    feature_key: float = 0.0  # keying one split's cached frozen-encoder features (weights digest, files)
    feature_clip: float = 0.0  # computing one clip's frozen-encoder features (once per grid: shared cache)


@dataclass(frozen=True)
class RunWork:
    """How much one run does: optimiser steps and evaluation batches (validations and the test)."""

    train_steps: int
    eval_batches: int = 0
    checkpoints: int = 0  # last.pt after every epoch, best.pt after every validation (at most)
    clips: int = 0  # clips of the three splits, whose frozen-encoder features the grid caches once


@dataclass(frozen=True)
class GridEstimate:
    """A grid's expected duration from a measured warm-up of each distinct config."""

    seconds: float
    runs: int
    jobs: int
    step_seconds: dict[str, float]  # measured seconds per training step, by method name

    def text(self) -> str:
        steps = ", ".join(f"{name} {value:.2f} s" for name, value in self.step_seconds.items())
        return (f"estimate: about {duration_text(self.seconds)} for {self.runs} run(s) on {self.jobs} job(s) "
                f"(from a warm-up; seconds per training step: {steps})")


def duration_text(seconds: float) -> str:
    """Seconds for people: "40 s", "12.5 min", "3.2 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _config_key(cfg_dict: dict[str, Any]) -> str:
    """A config without what differs between the runs of one method (seed, name, where it runs)."""
    flat = flatten(cfg_dict)
    return json.dumps({k: v for k, v in flat.items() if k not in _NOT_COMPARED | {"seed", "name"}},
                      sort_keys=True, default=str)


def estimate_grid_seconds(
    cfgs: list[Any],
    measure: Any,
    work: Any,
    jobs: int = 1,
    start_up: float = 0.0,
) -> GridEstimate:
    """Expected duration of the runs `cfgs`, measuring each distinct config once.

    `measure(cfg)` gives a `RunCost` from a short warm-up; configs that differ only in seed share
    one measurement. `work(cfg)` gives the run's `RunWork`. Each run counts its start-up, training
    steps, validation and test batches, checkpoints and the reload of its best checkpoint for the
    test; a run that starts before its frozen encoders' features are cached computes them too.
    The runs are laid out as `_train_runs` starts them, longest first, each on the first free of
    `jobs` workers (at most the number of runs), assuming a worker's step takes as long as the
    warm-up's; `start_up` (the workers' start) is added once.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    measured: dict[str, RunCost] = {}
    per_method: dict[str, float] = {}
    runs = []  # (seconds, frozen encoders, seconds to cache their features), in start order
    for cfg in sorted(cfgs, key=lambda c: -_expected_cost(c)):  # stable, as _train_runs sorts
        key = _config_key(to_dict(cfg))
        if key not in measured:
            measured[key] = measure(cfg)
            per_method.setdefault(cfg.name, measured[key].train_step)
        cost, done = measured[key], work(cfg)
        seconds = (cost.setup + cost.reload + cost.train_step * done.train_steps + cost.feature_key * len(SPLITS)
                   + cost.eval_batch * done.eval_batches + cost.checkpoint * done.checkpoints)
        runs.append((seconds, _frozen_encoders(cfg), cost.feature_clip * done.clips))
    parallel = max(1, min(jobs, len(cfgs)))
    return GridEstimate(_makespan(runs, parallel) + start_up, len(cfgs), parallel, per_method)


def _makespan(runs: list[tuple[float, tuple, float]], jobs: int) -> float:
    """When the last run ends: each run, in order, on the first free of `jobs` workers; one that
    starts before its encoders' features are cached computes them too (as two runs started at
    once both do)."""
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
    """What a run's cached encoder features depend on besides the data: runs that agree here
    read the same cache (`engine.features.cache_key`), which the first of them computes."""
    model = cfg.model
    random_audio = not (model.vggish_weights or model.audio_weights)  # a random start differs by seed
    return (cfg.data.root, cfg.data.image_size, cfg.data.audio, cfg.seed if random_audio else None,
            model.backbone, model.freeze_backbone, model.resnet_weights, model.audio_encoder,
            model.vggish_weights, model.audio_weights)


def _as_fit_feeds(cfg: Any, train_set: Any):
    """The training set as `train.fit` feeds it: counterfactual pairs where the loss needs them."""
    from avs_lib.data.counterfactual import CounterfactualPairs

    return CounterfactualPairs(train_set, seed=cfg.seed) if cfg.loss.counterfactual > 0 else train_set


# The test pass of `train.fit` runs the true, silent and swapped audio (evaluate_system diagnostics).
TEST_PASSES = 3


def run_work(cfg: Any) -> RunWork:
    """Steps and evaluation batches of one run as `train.fit` does it: epochs x batches per epoch
    (capped by optim.steps_per_epoch); a validation every `eval_every` epochs and after the last;
    the test split with its silent- and swapped-audio passes."""
    from avs_lib.engine.datasets import build_dataset

    splits = {split: build_dataset(cfg, split) for split in SPLITS}  # each split read once
    batches = len(_as_fit_feeds(cfg, splits["train"])) // cfg.optim.batch_size
    if cfg.optim.steps_per_epoch is not None:
        batches = min(batches, cfg.optim.steps_per_epoch)
    epochs = cfg.optim.epochs
    validations = len({e for e in range(epochs) if (e + 1) % cfg.eval_every == 0} | {epochs - 1})
    val, test = (math.ceil(len(splits[split]) / cfg.eval_batch_size) for split in ("val", "test"))
    clips = sum(len(dataset) for dataset in splits.values())
    return RunWork(epochs * batches, validations * val + TEST_PASSES * test, epochs + validations, clips)


def measure_run_cost(cfg: Any, steps: int = 2, threads: int | None = None) -> RunCost:
    """A config's `RunCost` on its device with the CPU threads its run will have (the config's
    `threads`, else `threads`, else this process's), measured as `_measure_run_cost` says."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or threads or before)
    try:
        return _measure_run_cost(cfg, steps)
    finally:
        torch.set_num_threads(before)


def _measure_run_cost(cfg: Any, steps: int) -> RunCost:
    """A config's `RunCost` on its device, measured as `train.fit` trains: reading the splits and
    building the model (its weight files) as start-up, the batches as fit feeds them (with the
    frozen encoders' features cached, `_warm_up_batches`), one untimed step (allocations, kernels
    chosen), then `steps` timed training steps and `steps` evaluation batches, scaled from the
    training batch size to `eval_batch_size`."""
    import torch

    from avs_lib.engine.datasets import build_dataset
    from avs_lib.engine.system import AVSSystem, select_device
    from avs_lib.engine.train import (
        build_optimizer,
        build_scheduler,
        move_batch,
        to_channels_last,
        train_one_epoch,
    )
    from avs_lib.losses import TotalLoss

    cfg = _with_top_level(cfg, quiet=True)
    device = select_device(cfg.device)

    def timed(work) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    holder: dict[str, Any] = {}

    def build() -> None:
        for split in SPLITS:
            build_dataset(cfg, split)
        holder["system"] = AVSSystem(cfg).to(device)
        if device.type == "cuda" and cfg.channels_last:
            to_channels_last(holder["system"])

    setup = timed(build)
    system = holder["system"]
    batches, feature_key, feature_clip = _warm_up_batches(cfg, system, device, steps + 1)
    optimizer = build_optimizer(cfg, system.parameters())
    scheduler = build_scheduler(cfg, optimizer, len(batches))
    loss_fn = TotalLoss(cfg.loss)
    train_one_epoch(system, loss_fn, optimizer, scheduler, batches[:1], device, 0, cfg)
    rest = batches[1:] or batches[:1]
    train = timed(lambda: train_one_epoch(system, loss_fn, optimizer, scheduler, rest, device, 0, cfg))
    system.eval()

    def evaluate() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                             enabled=cfg.amp and device.type == "cuda"):
            for batch in rest:
                system(move_batch(batch, device))

    per_eval_batch = timed(evaluate) / len(rest) * cfg.eval_batch_size / cfg.optim.batch_size
    return RunCost(train / len(rest), per_eval_batch, setup, *_checkpoint_costs(system, optimizer, cfg, device),
                   feature_key, feature_clip)


def _warm_up_batches(cfg: Any, system: Any, device: Any, count: int) -> tuple[list, float, float]:
    """`count` training batches as `train.fit` feeds them: the counterfactual pairs where the loss
    needs them, and the frozen encoders' cached features where fit caches them (computed here into
    a temporary folder). Also the seconds to key one split's cache (the frozen weights' digest and
    the data files) and to compute one clip's features; 0 without the cache."""
    import tempfile

    from torch.utils.data import DataLoader

    from avs_lib.data import collate_clips
    from avs_lib.engine.datasets import ClipSubset, build_dataset
    from avs_lib.engine.features import WithFrozenFeatures, cache_key, frozen_features, frozen_parts

    clips = ClipSubset(build_dataset(cfg, "train"), count * cfg.optim.batch_size)
    parts = frozen_parts(system)
    cached = cfg.feature_cache and parts.any
    feature_key = feature_clip = 0.0
    with tempfile.TemporaryDirectory() as folder:
        train_set = _as_fit_feeds(cfg, clips)
        if cached:
            started = time.perf_counter()
            cache_key(system, parts, clips)
            feature_key = time.perf_counter() - started
            features = frozen_features(system, clips, folder, device)  # keys again, then computes
            feature_clip = max(time.perf_counter() - started - 2 * feature_key, 0.0) / len(clips)
            train_set = WithFrozenFeatures(train_set, features)
        loader = DataLoader(train_set, batch_size=cfg.optim.batch_size, shuffle=False, drop_last=True,
                            num_workers=0, collate_fn=collate_clips)
        batches = list(_take(loader, count))  # copied out of the cache before it is deleted
    if not batches:
        raise ValueError(f"the training split of {cfg.data.root} has fewer clips than one batch")
    return batches, feature_key, feature_clip


def _checkpoint_costs(system: Any, optimizer: Any, cfg: Any, device: Any) -> tuple[float, float]:
    """Seconds to write one checkpoint as `train.fit` does after an epoch (trained weights, frozen
    encoders by reference, optimiser state) and to rebuild the system from it for the test."""
    import tempfile

    from avs_lib.engine.checkpoint import atomic_torch_save, weight_entries
    from avs_lib.engine.system import load_system

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.pt"
        started = time.perf_counter()
        atomic_torch_save({"config": to_dict(cfg), **weight_entries(system, cfg),
                           "optimizer": optimizer.state_dict()}, path)
        saved = time.perf_counter()
        load_system(path, device)
        return saved - started, time.perf_counter() - saved


def _take(iterable, count: int):
    for i, item in enumerate(iterable):
        if i >= count:
            return
        yield item


def _with_top_level(cfg: Any, **top_level: Any):
    """`cfg` rebuilt with some top-level fields changed (the original is left alone)."""
    from avs_lib.config import config_from_dict

    return config_from_dict({**to_dict(cfg), **top_level})


class _RunProgress:
    """One plain line per finished run with the time left: it reaches a terminal through papermill's
    cell output, where a notebook's tqdm widget does not."""

    def __init__(self, total: int, done: int):
        self.total, self.done, self.trained = total, done, 0
        self.started = time.perf_counter()

    def finished(self, cfg: Any) -> None:
        self.done += 1
        self.trained += 1
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.trained * (self.total - self.done)
        print(f"[runs] {self.done}/{self.total} done ({cfg.name} seed {cfg.seed}); "
              f"{duration_text(elapsed)} so far, about {duration_text(left)} left", flush=True)


def train_grid(
    profile: str,
    grid: Grid,
    data_root: str | Path,
    runs_dir: str | Path,
    device: str = "auto",
    weights: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    skip_done: bool = True,
    quiet: bool = True,
    jobs: int = 1,
    reuse_stale: bool = False,
    estimate: bool = False,
) -> pd.DataFrame:
    """Train every run of `grid` (methods, extras, ablations) into
    `engine.runs.run_folder(...)/{method}_seed{seed}` in one pool of workers, so no worker idles between
    the groups; one row per run. Each run's config is `engine.runs.run_config`'s, the same as
    `python -m avs_lib train` resolves; `weights` come from `engine.runs.starting_weights`.

    A finished run (summary.json, same config, data and code version) is reused when `skip_done`,
    with one line saying so; an interrupted one resumes from its last checkpoint; a run made with
    another config or data, or by other code (unless `reuse_stale`), is trained again with one
    warning saying why (`_run_status`). `estimate` prints the expected
    training time from a short warm-up of each distinct config before training starts.
    `quiet` hides the per-epoch progress bars of each run (the bar over runs stays).
    `jobs` > 1 trains that many runs at once in worker processes (CPU only), each with the
    `threads` of its config (else cpu_count // jobs); a run's result does not depend on which
    worker trained it, nor, with `threads` set, on the machine's core count.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    pairs = grid.pairs
    code = code_version()
    cfgs = [run_config(profile, method, seed, data_root, runs_dir, device=device, weights=weights,
                       overrides=overrides, quiet=quiet) for method, seed in pairs]
    fingerprints: dict[tuple, dict[str, Any]] = {}  # one per kind of read (with or without crop labels)
    todo = []
    for cfg in cfgs:
        reads = data_read_by(cfg)
        if reads not in fingerprints:
            fingerprints[reads] = data_fingerprint(*reads)
        status = _run_status(cfg.run_dir, to_dict(cfg), code, fingerprints[reads], reuse_stale)
        if status == "done" and skip_done:
            print(f"reused {cfg.run_dir.name}: same config and data ({cfg.run_dir})", flush=True)
            continue
        todo.append((cfg, status == "partial"))
    seen: set[tuple[type, str]] = set()  # the warnings shown so far, each once per grid
    if estimate and todo:
        with warnings.catch_warnings(record=True) as caught:  # the warm-up builds every config too
            warnings.simplefilter("always")
            text = _estimate(todo, jobs).text()
        _warn_once(_records(caught), seen)
        print(text, flush=True)
    progress = _RunProgress(len(pairs), len(pairs) - len(todo))
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="runs", unit="run")
    _train_runs(todo, jobs, bar, progress, seen)
    bar.close()
    return pd.DataFrame([_summary_row(cfg.run_dir) for cfg in cfgs])


def _estimate(todo: list[tuple[Any, bool]], jobs: int) -> GridEstimate:
    """The estimate of the runs to train, measured with the threads each will have, plus the
    start-up of the worker processes (a fresh interpreter importing the training code) when
    they train in workers."""
    import subprocess
    import sys

    workers = jobs > 1 and len(todo) > 1
    threads = max(1, (os.cpu_count() or 1) // jobs) if workers else None
    start_up = 0.0
    if workers:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import avs_lib.engine.train"], check=False, capture_output=True)
        start_up = time.perf_counter() - started
    return estimate_grid_seconds([c for c, _ in todo], lambda cfg: measure_run_cost(cfg, threads=threads),
                                 run_work, jobs, start_up=start_up)


def _train_runs(todo: list[tuple[Any, bool]], jobs: int, bar: Any, progress: _RunProgress,
                seen: set[tuple[type, str]]) -> None:
    """Train the (config, resume) runs here, or `jobs` at a time in spawned workers, longest first;
    each warning not in `seen` is shown once, and a failed run stops the rest naming the run."""
    from avs_lib.engine.train import fit

    if jobs == 1 or len(todo) <= 1:
        for cfg, resume in todo:
            bar.set_postfix_str(f"{cfg.name} seed {cfg.seed}")
            _forget_summary(cfg.run_dir)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(cfg, resume=resume)
            _warn_once(_records(caught), seen)
            bar.update()
            progress.finished(cfg)
        return
    import multiprocessing

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
            bar.set_postfix_str(f"{cfg.name} seed {cfg.seed} done")
            _warn_once(messages, seen)
            bar.update()
            progress.finished(cfg)


# ---------------------------------------------------------------- reading results

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
    row = {"method": summary.get("name"), **{k: v for k, v in summary.items() if k != "name"}}
    for key in ("method", "seed"):
        if row.get(key) is None:
            raise DataFormatError(path, f"no {'name' if key == 'method' else key!r} field")
    row["run_dir"] = str(run_dir)
    return row


def _run_dirs(runs_dir: str | Path, marker: str) -> list[Path]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory not found: {runs_dir} (train first: 03_training)")
    depth = len(Path(marker).parts)  # the run directory is this many levels above the marker
    return sorted(p.parents[depth - 1] for p in runs_dir.glob(f"*/{marker}"))


def _ordered_frame(rows: list[dict[str, Any]], first: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in first:
        if column not in frame.columns:
            frame[column] = float("nan")
    rest = [c for c in frame.columns if c not in first]
    return frame[first + rest]


def collect_results(runs_dir: str | Path, methods: list[str] | None = None,
                    seeds: list[int] | None = None, pairs: list[tuple[str, int]] | None = None) -> pd.DataFrame:
    """One row per finished run under `runs_dir` (from summary.json), ordered by method and seed
    (methods in the order of `config.METHODS`); optionally only the given methods and seeds, or
    only the given (method, seed) pairs (a grid's `pairs`: no run of an older, larger grid)."""
    wanted = None if pairs is None else set(pairs)
    rows = [_summary_row(d) for d in _run_dirs(runs_dir, "summary.json")]
    rows = [r for r in rows if (methods is None or r["method"] in methods) and (seeds is None or r["seed"] in seeds)
            and (wanted is None or (r["method"], r["seed"]) in wanted)]
    if not rows:
        raise FileNotFoundError(f"no finished runs (*/summary.json) under {runs_dir}"
                                + (f" for methods {methods}" if methods else "") + (f" seeds {seeds}" if seeds else ""))
    frame = _ordered_frame(rows, RESULT_COLUMNS)
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
    """Mean and sample std (ddof=1; NaN for one seed) over seeds, per method, in order of appearance.

    Columns: n_seeds, then per metric `{metric}_mean`, `{metric}_std` and `{metric}` as text
    ("0.612 ± 0.013"; the mean alone for a single seed).
    """
    missing = [c for c in ["method", "seed", *metrics] if c not in df.columns]
    if missing:
        raise ValueError(f"summarise: missing column(s) {missing}; the table has {list(df.columns)}")
    methods = list(dict.fromkeys(df["method"]))
    grouped = df.groupby("method", sort=False)
    out = pd.DataFrame(index=pd.Index(methods, name="method"))
    out["n_seeds"] = grouped["seed"].nunique().reindex(methods)
    for metric in metrics:
        values = grouped[metric]
        out[f"{metric}_mean"] = values.mean().reindex(methods)
        out[f"{metric}_std"] = values.std(ddof=1).reindex(methods)
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


def results_table(results: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """The report's results table: one row per method, "mean ± std" text per metric, readable
    headers, and the official F-score's test batch size in its header."""
    metrics = metrics or list(RESULT_HEADERS)
    summary = summarise(results, metrics)
    batches = sorted(set(results["test_f_score_batch_size"].dropna().astype(int)))
    headers = {m: RESULT_HEADERS.get(m, m).format(batch="/".join(map(str, batches)) or "?") for m in metrics}
    table = summary[["n_seeds", *metrics]].rename(columns={"n_seeds": "seeds", **headers})
    return table


def describe_methods(methods: list[str]) -> pd.DataFrame:
    """What each method changes relative to the profile (its entry in `config.METHODS`)."""
    def text(overrides: dict[str, Any], prefix: str = "") -> list[str]:
        parts = []
        for key, value in overrides.items():
            parts += text(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}={value}"]
        return parts

    return pd.DataFrame({"method": methods, "changes": [", ".join(text(METHODS[m])) or "(baseline)" for m in methods]})


def failure_pair(results: pd.DataFrame) -> tuple[str, str]:
    """(baseline, compared method) of the failure-case notebook: tpavi and the thesis model when
    both were trained; else the baseline (or the first method trained) and the first other one,
    or the same method twice when only one was trained (a grid of `tpavi` alone on MS3)."""
    trained = list(dict.fromkeys(results["method"]))
    if not trained:
        raise ValueError("no finished runs to show failure cases of")
    baseline = BASELINE if BASELINE in trained else trained[0]
    if PROPOSED in trained and PROPOSED != baseline:
        return baseline, PROPOSED
    others = [m for m in trained if m != baseline]
    return baseline, others[0] if others else baseline


def representative_run(results: pd.DataFrame, method: str, metric: str = "test_miou") -> str:
    """The run of `method` whose `metric` is the median over its seeds (the lower one for an even
    count), so pictures of "the method" do not come from its best or worst seed."""
    rows = results[results["method"] == method].sort_values([metric, "seed"])
    if rows.empty:
        raise ValueError(f"no finished run of method {method!r}; have {sorted(set(results['method']))}")
    seed = int(rows["seed"].iloc[(len(rows) - 1) // 2])
    return f"{method}_seed{seed}"



STEP_LOG_NON_LOSS_COLUMNS = ("epoch", "step", "global_step", "lr")


def loss_terms_long(steps: pd.DataFrame, method: str, seed: int) -> pd.DataFrame:
    """A run's `steps.jsonl` (one row per step, one column per loss term) in the long format
    `viz.plot_loss_curves` takes: columns method, seed, global_step, term, value.

    Every column except epoch, step, global_step and lr is a loss term.
    """
    if not isinstance(steps, pd.DataFrame):
        raise ValueError(f"loss_terms_long: expected a pandas DataFrame, got {type(steps).__name__}")
    if "global_step" not in steps.columns:
        raise ValueError(f"loss_terms_long: missing column(s) ['global_step']; the table has {list(steps.columns)}")
    if steps.empty:
        raise ValueError("loss_terms_long: the table is empty; nothing to plot")
    terms = [c for c in steps.columns if c not in STEP_LOG_NON_LOSS_COLUMNS]
    if not terms:
        raise ValueError(f"loss_terms_long: no loss-term columns; the table has {list(steps.columns)}")
    long = steps.melt(id_vars=["global_step"], value_vars=terms, var_name="term", value_name="value")
    long.insert(0, "seed", seed)
    long.insert(0, "method", method)
    return long

def loss_curves(runs_dir: str | Path, methods: list[str] | None = None) -> pd.DataFrame:
    """Every run's steps.jsonl in the long format of `viz.plot_loss_curves`
    (method, seed, global_step, term, value)."""
    frames = []
    for run_dir in _run_dirs(runs_dir, "steps.jsonl"):
        method, seed = _run_identity(run_dir)
        if methods is not None and method not in methods:
            continue
        lines = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line]
        if lines:
            frames.append(loss_terms_long(pd.DataFrame(lines), method, seed))
    if not frames:
        raise FileNotFoundError(f"no step logs (*/steps.jsonl) under {runs_dir}")
    return pd.concat(frames, ignore_index=True)


def _run_identity(run_dir: Path) -> tuple[str, int]:
    """(method, seed) of a run, from its config.yaml."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    cfg = yaml.safe_load(path.read_text()) or {}
    return str(cfg.get("name")), int(cfg.get("seed", 0))


def _test_tables(runs_dir: str | Path, file_name: str) -> pd.DataFrame:
    frames = []
    for run_dir in _run_dirs(runs_dir, f"test/{file_name}"):
        method, seed = _run_identity(run_dir)
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
    table = _test_tables(runs_dir, "per_category.csv")
    table["iou"] = table["miou"]
    return table


def per_clip(runs_dir: str | Path) -> pd.DataFrame:
    """Each run's test/per_clip.csv (name, category, iou, n_frames), with method and seed."""
    return _test_tables(runs_dir, "per_clip.csv")


# ---------------------------------------------------------------- the figures of others

REPORTED_LABEL = "reported, not measured here"
# Figures published elsewhere, on the real AVSBench S4 test split (the AVSBench paper and the thesis write-up). They are printed beside
# our numbers for orientation only: our runs use other data, sizes and budgets.
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
    """REPORTED as a table (label, source, miou, f_score), every row marked "reported, not measured here"."""
    rows = [{**values, "status": REPORTED_LABEL} for values in REPORTED.values()]
    return pd.DataFrame(rows).set_index("label")


def reference_lines(profile: str, metric: str = "miou") -> dict[str, float]:
    """Reported values to draw beside our bars: only on the real data (profile `paper`);
    on synthetic data they measure something else and would mislead."""
    if metric not in ("miou", "f_score"):
        raise ValueError(f"reported figures exist for miou and f_score, not {metric!r}")
    if profile != "paper":
        return {}
    return {f"{v['label']} (reported)": v[metric] for v in REPORTED.values()}


# ---------------------------------------------------------------- ablation and conclusions


# ---------------------------------------------------------------- the recipe ladder (val)

# The rungs: the same tpavi objective and budget from each start; `tpavi` is the cpu profile's.
LADDER = ("tpavi_random_closed", "tpavi_random_open", "tpavi_pretrained_closed", "tpavi_trained", "tpavi")


def recipe_ladder(runs_dir: str | Path, rungs: tuple[str, ...] = LADDER, seed: int = 0,
                  chosen: str = "tpavi") -> pd.DataFrame:
    """The val-split numbers of each rung's run (its best epoch) beside what its start was, read
    from the run's own config: encoders random or pretrained, the fusion gate, the backbone frozen
    or trained. Rungs not trained are left out; an empty frame when none was."""
    rows = []
    for rung in rungs:
        run_dir = Path(runs_dir) / f"{rung}_seed{seed}"
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
    columns = ["start", "gate", "backbone", "val_miou", "val_listening_rate", "val_following_rate", "best_epoch",
               "chosen"]
    return pd.DataFrame(rows, columns=["rung", *columns]).set_index("rung")


__all__ = [
    "LADDER",
    "recipe_ladder",
    "REPORTED",
    "REPORTED_LABEL",
    "collect_results",
    "config_differences",
    "default_jobs",
    "describe_methods",
    "estimate_grid_seconds",
    "failure_pair",
    "measure_run_cost",
    "grid_for",
    "loss_curves",
    "loss_terms_long",
    "per_category",
    "per_clip",
    "train_grid",
    "run_work",
    "reference_lines",
    "reported_table",
    "representative_run",
    "results_table",
    "summarise",
]
