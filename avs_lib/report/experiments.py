"""The report's experiments: which runs, running them once, and the tables the notebooks show.

`run_grid` trains every (method, seed) of a grid with `train.fit`, skipping runs that already
finished, so a rerun of the training notebook costs nothing. Everything else reads the files a
run leaves behind (summary.json, steps.jsonl, test/*.csv), never a model: the results can be
studied on a machine that did not train them.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm.auto import tqdm

from avs_lib.config import METHODS, PROFILES, build_config, to_dict
from avs_lib.configtools import deep_merge
from avs_lib.data.errors import DataFormatError
from avs_lib.engine.pretrain import (
    PRETRAINED_FOLDER,
    PretrainConfig,
    ensure_pretrained,
    weight_overrides_from,
)
from avs_lib.report.viz import loss_terms_long

# ---------------------------------------------------------------- what is run


@dataclass(frozen=True)
class Grid:
    """The runs of one profile: the main methods with every seed, extra methods compared with the
    first seed only, and the ablations."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    ablations: tuple[str, ...] = ()
    ablation_seeds: tuple[int, ...] | None = None  # None: the same seeds as the methods
    extras: tuple[str, ...] = ()  # in the comparison, with seeds[:1] (a budget cut, said in tables)

    @property
    def compared(self) -> list[str]:
        """The methods of the main comparison: the main ones, then the extras."""
        return [*self.methods, *self.extras]

    @property
    def all_methods(self) -> list[str]:
        return [*self.methods, *self.extras, *self.ablations]

    @property
    def runs(self) -> list[tuple[list[str], list[int]]]:
        """(methods, seeds) groups to train: the methods with all seeds, the extras, the ablations."""
        groups = [(list(self.methods), list(self.seeds))]
        if self.extras:
            groups.append((list(self.extras), list(self.seeds[:1])))
        if self.ablations:
            seeds = self.seeds if self.ablation_seeds is None else self.ablation_seeds
            groups.append((list(self.ablations), list(seeds)))
        return groups

    @property
    def pairs(self) -> list[tuple[str, int]]:
        """Every (method, seed) run of the grid, in training order."""
        return [(m, s) for methods, seeds in self.runs for m in methods for s in seeds]


MAIN_METHODS = ("visual_only", "tpavi", "tpavi_avm", "thesis", "thesis_shared", "cross_attention",
                "counterfactual", "thesis_counterfactual")
ABLATIONS = ("thesis_minus_crop_ce", "thesis_minus_pairwise", "thesis_minus_cosine")
# The cpu report's budget (about 45 min on 2 cores) holds 3 seeds of four methods: the floor, the
# baseline, the thesis and the counterfactual objective; the other methods get one seed.
CPU_METHODS = ("visual_only", "tpavi", "thesis", "counterfactual")
CPU_EXTRAS = ("tpavi_avm", "cross_attention", "thesis_shared")

DEFAULT_GRID: dict[str, Grid] = {
    # Proves the notebooks run end to end; one seed, so no claim can rest on it.
    "smoke": Grid(("visual_only", "tpavi", "thesis", "counterfactual"), (0,)),
    "cpu": Grid(CPU_METHODS, (0, 1, 2), ABLATIONS, ablation_seeds=(0,), extras=CPU_EXTRAS),
    "gpu": Grid(MAIN_METHODS, (0, 1, 2), ABLATIONS),
}

BASELINE, PROPOSED, COUNTERFACTUAL = "tpavi", "thesis", "counterfactual"


def grid_for(profile: str, methods: list[str] | None = None, seeds: list[int] | None = None) -> Grid:
    """The profile's default grid, or the methods/seeds given (which then replace it)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    default = DEFAULT_GRID.get(profile)
    if default is None and (methods is None or seeds is None):
        raise ValueError(
            f"profile {profile!r} has no default grid (its runs take hours on real data); "
            "pass METHODS and SEEDS explicitly"
        )
    if methods is not None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
        picked_methods: tuple[str, ...] = tuple(methods)
        ablations: tuple[str, ...] = ()
        extras: tuple[str, ...] = ()
    else:
        picked_methods, ablations, extras = default.methods, default.ablations, default.extras
    picked_seeds = tuple(int(s) for s in seeds) if seeds is not None else default.seeds
    if not picked_methods or not picked_seeds:
        raise ValueError("a grid needs at least one method and one seed")
    ablation_seeds = None
    if ablations and default.ablation_seeds is not None:
        ablation_seeds = tuple(s for s in default.ablation_seeds if s in picked_seeds) or picked_seeds[:1]
    return Grid(picked_methods, picked_seeds, ablations, ablation_seeds, extras)


# ---------------------------------------------------------------- the data a profile reads


@dataclass(frozen=True)
class SyntheticSpec:
    """Where and how big the synthetic dataset of a profile is, and how its encoders are pretrained.

    `pretrain` (None: none) stands in for ImageNet/AudioSet weights when the user gives no local
    weight files (`avs_lib.engine.pretrain`); its files go to `{folder}/pretrained/`.
    """

    folder: str
    videos_per_split: tuple[int, int, int]
    image_size: int
    num_classes: int = 23
    pretrain: PretrainConfig | None = None


DEFAULT_SYNTH_FOLDER = "synth"  # `make data` and the notebooks' default DATA_ROOT end in it
SYNTHETIC_DATA: dict[str, SyntheticSpec] = {
    # One pretraining epoch each: exercises the path in seconds, learns little.
    "smoke": SyntheticSpec("synth_smoke", (6, 4, 4), 64,
                           pretrain=PretrainConfig(visual_epochs=1, audio_epochs=1, batch_size=16)),
    # 8 of the 23 classes: ~30 training clips per sounding class instead of ~10. Pretrained
    # encoders: from random init no method learned to follow the audio within the budget.
    "cpu": SyntheticSpec("synth", (240, 60, 60), 96, num_classes=8, pretrain=PretrainConfig()),
    "gpu": SyntheticSpec("synth_gpu", (240, 60, 60), 224),
}


def prepare_data(profile: str, data_root: str | Path, progress: bool = False) -> Path:
    """The dataset root a profile reads, generated first when it is the synthetic default.

    A root whose folder is named `synth` (the default) stands for "the synthetic data": the
    profile's own folder beside it is made, or reused when it already holds the same data
    (`synth.ensure_dataset`). Any other root is the user's and is only checked to exist.
    """
    from avs_lib.data.synth import ensure_dataset

    root = Path(data_root)
    spec = SYNTHETIC_DATA.get(profile)
    if spec is not None and root.name == DEFAULT_SYNTH_FOLDER:
        root = root.parent / spec.folder
        ensure_dataset(root, spec.videos_per_split, image_size=spec.image_size,
                       num_classes=spec.num_classes, progress=progress)
        return root
    if not (root / "s4_meta_data.csv").is_file() and not (root / "ms3_meta_data.csv").is_file():
        raise FileNotFoundError(
            f"no AVSBench dataset at {root} (expected s4_meta_data.csv there); point DATA_ROOT "
            f"at the dataset, or at a folder named {DEFAULT_SYNTH_FOLDER!r} to generate synthetic data"
        )
    return root


def profile_weights(
    profile: str,
    data_root: str | Path,
    resnet_weights: str | None = None,
    vggish_weights: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Config overrides for the encoders' starting weights of a grid.

    Local weight files given by the user win (`weight_overrides`). Without them, a profile whose
    synthetic data has a pretraining recipe (`SyntheticSpec.pretrain`) starts from encoders
    pretrained on that data's training split, made once into `data_root/pretrained/` and reused;
    any other profile or data root starts from random init (the model builder says so).
    """
    if resnet_weights is not None or vggish_weights is not None:
        return weight_overrides(resnet_weights, vggish_weights)
    spec = SYNTHETIC_DATA.get(profile)
    root = Path(data_root)
    if spec is None or spec.pretrain is None or root.name != spec.folder:
        return {}
    report = ensure_pretrained(root, root / PRETRAINED_FOLDER, spec.pretrain, quiet=quiet)
    return weight_overrides_from(report)


def weight_overrides(resnet_weights: str | None = None, vggish_weights: str | None = None) -> dict[str, Any]:
    """Config overrides that load local pretrained weights (None: train from random init).

    The ImageNet ResNet file also initialises a separate crop trunk of the same kind.
    """
    model: dict[str, Any] = {}
    if resnet_weights is not None:
        model["resnet_weights"] = str(resnet_weights)
        model["crop_weights"] = str(resnet_weights)
    if vggish_weights is not None:
        model["vggish_weights"] = str(vggish_weights)
    return {"model": model} if model else {}


# ---------------------------------------------------------------- running


# Settings that change where or how fast a run goes, not what it computes.
_NOT_COMPARED = {"device", "quiet", "output_dir", "data.root", "data.num_workers", "data.cache_dir",
                 "feature_cache"}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dicts, ignoring where/how fast it ran
    (the data root counts when the two paths lead to different folders)."""
    a, b = _flatten(saved), _flatten(wanted)
    keys = sorted((set(a) | set(b)) - _NOT_COMPARED)
    differ = [k for k in keys if a.get(k) != b.get(k)]
    root_a, root_b = a.get("data.root"), b.get("data.root")
    if root_a is None or root_b is None or Path(root_a).resolve() != Path(root_b).resolve():
        differ.append("data.root")
    return differ


def _run_status(run_dir: Path, wanted: dict[str, Any]) -> str:
    """'done' (reusable summary), 'partial' (resumable), 'new', or 'stale' (another config)."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return "new"
    differences = config_differences(yaml.safe_load(config_path.read_text()) or {}, wanted)
    if differences:
        warnings.warn(f"{run_dir} was trained with another config (differs in {', '.join(differences)}); "
                      "training it again", stacklevel=2)
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


def default_jobs(device: str = "auto") -> int:
    """Runs at a time: 2 when training on the CPU with at least 2 cores (measured on 2 cores:
    two 1-thread runs finish 1.4x more steps per second than one 2-thread run), else 1."""
    from avs_lib.engine.system import select_device

    return 2 if select_device(device).type == "cpu" and (os.cpu_count() or 1) >= 2 else 1


def run_grid(
    profile: str,
    methods: list[str],
    seeds: list[int],
    data_root: str | Path,
    runs_dir: str | Path,
    **options: Any,
) -> pd.DataFrame:
    """Train every (method, seed) into `runs_dir/{method}_seed{seed}`; one row per run.
    `options` (device, overrides, skip_done, quiet, jobs) as for `train_grid`."""
    if not methods or not seeds:
        raise ValueError("run_grid needs at least one method and one seed")
    grid = Grid(tuple(methods), tuple(int(s) for s in seeds))
    return train_grid(profile, grid, data_root, runs_dir, **options)


def train_grid(
    profile: str,
    grid: Grid,
    data_root: str | Path,
    runs_dir: str | Path,
    device: str = "auto",
    overrides: dict[str, Any] | None = None,
    skip_done: bool = True,
    quiet: bool = True,
    jobs: int = 1,
) -> pd.DataFrame:
    """Train every run of `grid` (methods, extras, ablations) into `runs_dir/{method}_seed{seed}`
    in one pool of workers, so no worker idles between the groups; one row per run.

    A finished run (summary.json, same config) is reused when `skip_done`; an interrupted one
    resumes from its last checkpoint; a run made with another config is trained again.
    `quiet` hides the per-epoch progress bars of each run (the bar over runs stays).
    `jobs` > 1 trains that many runs at once in worker processes (CPU only), each with
    cpu_count // jobs threads; a run's result does not depend on which worker trained it,
    but CPU float sums may differ in the last bits between thread counts.
    """
    from avs_lib.engine.train import fit

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    runs_dir = Path(runs_dir)
    pairs = grid.pairs
    # The saved config holds the absolute data root: a relative one would name another folder
    # when the grid is rerun from elsewhere (a notebook runs in notebooks/, `make` in the root).
    root = str(Path(data_root).resolve())
    todo = []
    for method, seed in pairs:
        base = {"data": {"root": root}, "output_dir": str(runs_dir), "device": device,
                "quiet": quiet, "seed": seed}
        cfg = build_config(profile, method, overrides=deep_merge(overrides or {}, base))
        status = _run_status(cfg.run_dir, to_dict(cfg))
        if status == "done" and skip_done:
            continue
        todo.append((cfg, status == "partial"))
    seen: set[tuple[type, str]] = set()
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc="runs", unit="run")
    if jobs == 1 or len(todo) <= 1:
        for cfg, resume in todo:
            bar.set_postfix_str(f"{cfg.name} seed {cfg.seed}")
            _forget_summary(cfg.run_dir)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(cfg, resume=resume)
            _warn_once(_records(caught), seen)
            bar.update()
    else:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_fit_in_worker, to_dict(cfg), resume, threads): cfg for cfg, resume in todo}
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
    bar.close()
    return pd.DataFrame([_summary_row(runs_dir / f"{m}_seed{s}") for m, s in pairs])


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


def best_method(summary: pd.DataFrame, metric: str, exclude: tuple[str, ...] = ()) -> str:
    """The method with the highest mean `metric` (the first in table order on a tie)."""
    means = summary.loc[[m for m in summary.index if m not in exclude], f"{metric}_mean"].dropna()
    if means.empty:
        raise ValueError(f"no method with a {metric} value outside {list(exclude)}")
    return str(means.idxmax())


def representative_run(results: pd.DataFrame, method: str, metric: str = "test_miou") -> str:
    """The run of `method` whose `metric` is the median over its seeds (the lower one for an even
    count), so pictures of "the method" do not come from its best or worst seed."""
    rows = results[results["method"] == method].sort_values([metric, "seed"])
    if rows.empty:
        raise ValueError(f"no finished run of method {method!r}; have {sorted(set(results['method']))}")
    seed = int(rows["seed"].iloc[(len(rows) - 1) // 2])
    return f"{method}_seed{seed}"


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


def worst_clips(clips: pd.DataFrame, method: str, n: int = 3) -> pd.DataFrame:
    """The `n` test clips with the lowest IoU for `method`, averaged over its seeds."""
    rows = clips[clips["method"] == method]
    if rows.empty:
        raise ValueError(f"no per-clip results for method {method!r}; have {sorted(set(clips['method']))}")
    mean = rows.groupby(["name", "category"], sort=False)["iou"].mean().reset_index()
    return mean.sort_values(["iou", "name"]).head(n).reset_index(drop=True)


def worst_clips_compared(clips: pd.DataFrame, method: str, other: str, n: int = 3) -> pd.DataFrame:
    """`method`'s worst clips with `other`'s IoU on the same clips beside them (means over seeds)."""
    worst = worst_clips(clips, method, n).rename(columns={"iou": f"{method} IoU"})
    rows = clips[clips["method"] == other]
    if rows.empty:
        raise ValueError(f"no per-clip results for method {other!r}; have {sorted(set(clips['method']))}")
    other_iou = rows.groupby("name")["iou"].mean()
    worst[f"{other} IoU"] = worst["name"].map(other_iou)
    return worst


# ---------------------------------------------------------------- the figures of others

REPORTED_LABEL = "reported, not measured here"
# Figures published elsewhere, on the real AVSBench S4 test split (SPEC §1). They are printed beside
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


def ablation(results: pd.DataFrame, metric: str = "test_miou") -> pd.DataFrame:
    """The full thesis model against each leave-one-out ablation: mean, std and the change.

    Empty when the ablation runs do not exist (they are in the cpu and gpu grids only).
    """
    present = [m for m in (PROPOSED, *ABLATIONS) if m in set(results["method"])]
    if PROPOSED not in present or len(present) == 1:
        return pd.DataFrame(columns=["n_seeds", f"{metric}_mean", f"{metric}_std", metric, "change"])
    table = summarise(results[results["method"].isin(present)], [metric])
    table = table.reindex(present)
    table["change"] = table[f"{metric}_mean"] - table.loc[PROPOSED, f"{metric}_mean"]
    return table


METRIC_NAMES = {"test_miou": "test mIoU", "test_listening_rate": "listening rate",
                "test_following_rate": "audio-following rate",
                "test_f_score_split": "split F-score", "test_miou_swapped": "mIoU with swapped audio"}


def _best(summary: pd.DataFrame, metric: str, digits: int) -> str:
    name = METRIC_NAMES.get(metric, metric)
    means = summary[f"{metric}_mean"].dropna()
    if means.empty:
        return f"No method has a {name}."
    top = means.max()
    tied = [m for m, v in means.items() if round(v, digits) == round(top, digits)]
    if len(tied) == 1:
        seeds = int(summary.loc[tied[0], "n_seeds"]) if "n_seeds" in summary.columns else 2
        note = "; one seed, so its spread is unknown" if seeds < 2 else ""
        return f"**{tied[0]}** has the highest mean {name} ({summary.loc[tied[0], metric]}{note})"
    return f"{_join(tied)} tie for the highest mean {name} ({round(top, digits):.{digits}f})"


def _join(names: list[str]) -> str:
    names = [f"**{n}**" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _compare(summary: pd.DataFrame, a: str, b: str, metric: str, digits: int) -> str:
    """Whether `a` beats `b` on `metric` by more than the seed spread (mean ± std not overlapping)."""
    if a not in summary.index or b not in summary.index:
        return f"The comparison of {a} with {b} needs runs of both."
    ma, mb = summary.loc[a, f"{metric}_mean"], summary.loc[b, f"{metric}_mean"]
    sa, sb = summary.loc[a, f"{metric}_std"], summary.loc[b, f"{metric}_std"]
    n = int(min(summary.loc[a, "n_seeds"], summary.loc[b, "n_seeds"]))
    diff = ma - mb
    head = f"On {METRIC_NAMES.get(metric, metric)}, {a} minus {b} is {diff:+.{digits}f}"
    if n < 2:
        return (f"{head}; with one seed per method the seed-to-seed spread is unknown, so this "
                "difference supports no claim either way.")
    spread = sa + sb
    if abs(diff) > spread:
        verdict = "better than" if diff > 0 else "worse than"
        return (f"{head}, larger than the seed spread ({spread:.{digits}f}, the sum of the two standard "
                f"deviations over at least {n} seeds): {a} is {verdict} {b} here.")
    return (f"{head}, within the seed spread ({spread:.{digits}f}, the sum of the two standard "
            f"deviations over at least {n} seeds): no difference can be claimed.")


def conclusions(summary: pd.DataFrame, digits: int = 3) -> str:
    """Plain-language conclusions computed from a `summarise` table with test_miou and
    test_listening_rate: never a claim the numbers do not carry."""
    needed = ["n_seeds", "test_miou_mean", "test_miou_std", "test_listening_rate_mean", "test_listening_rate_std"]
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise ValueError(f"conclusions: the summary lacks {missing}; call "
                         "summarise(results, ['test_miou', 'test_listening_rate'])")
    seeds = sorted(set(summary["n_seeds"].astype(int)))
    lines = [
        f"- Compared: {len(summary)} methods, {'/'.join(map(str, seeds))} seed(s) each.",
        f"- {_best(summary, 'test_miou', digits)}.",
        f"- {_best(summary, 'test_listening_rate', digits)}; the listening rate is the share of "
        "swapped-audio frames whose mask moved to the object that made the swapped-in sound.",
        f"- {_compare(summary, PROPOSED, BASELINE, 'test_miou', digits)}",
        f"- {_compare(summary, PROPOSED, BASELINE, 'test_listening_rate', digits)}",
    ]
    if "visual_only" in summary.index:
        lines.append(f"- A model that hears nothing is the floor that listening must beat. "
                     f"{_compare(summary, BASELINE, 'visual_only', 'test_miou', digits)}")
        lines.append(f"- Chance for the listening rate is what the model that hears nothing scores: "
                     f"{summary.loc['visual_only', 'test_listening_rate']} (it picks an object by its looks).")
    if "test_following_rate_mean" in summary.columns:
        means = summary["test_following_rate_mean"].dropna()
        top = means.idxmax() if not means.empty else None
        definition = ("the audio-following rate counts a frame only when the mask is on the sounding "
                      "object with the true audio *and* on the other object with the swapped audio, so it "
                      "is 0 for any model that ignores the audio")
        if top is not None and round(means[top], digits) > 0 and not (
                means[top] <= 2 * (summary.loc[top, "test_following_rate_std"] or 0)):
            lines.append(f"- {_best(summary, 'test_following_rate', digits)}; {definition}.")
        else:
            best = summary.loc[top, "test_following_rate"] if top is not None else "n/a"
            lines.append(f"- **No method's masks follow the audio**: the highest mean audio-following rate "
                         f"({best}) is not distinguishable from 0 ({definition}).")
        lines.append(f"- {_compare(summary, PROPOSED, BASELINE, 'test_following_rate', digits)}")
    if COUNTERFACTUAL in summary.index:
        lines.append(f"- {_compare(summary, COUNTERFACTUAL, BASELINE, 'test_listening_rate', digits)}")
        if "test_following_rate_mean" in summary.columns:
            lines.append(f"- {_compare(summary, COUNTERFACTUAL, BASELINE, 'test_following_rate', digits)}")
        lines.append(f"- What the counterfactual objective costs in segmentation. "
                     f"{_compare(summary, COUNTERFACTUAL, BASELINE, 'test_miou', digits)}")
    return "\n".join(lines)


__all__ = [
    "ABLATIONS",
    "DEFAULT_GRID",
    "Grid",
    "REPORTED",
    "REPORTED_LABEL",
    "SYNTHETIC_DATA",
    "ablation",
    "best_method",
    "collect_results",
    "conclusions",
    "config_differences",
    "default_jobs",
    "describe_methods",
    "grid_for",
    "loss_curves",
    "per_category",
    "per_clip",
    "prepare_data",
    "train_grid",
    "profile_weights",
    "reference_lines",
    "reported_table",
    "representative_run",
    "results_table",
    "run_grid",
    "summarise",
    "weight_overrides",
    "worst_clips",
    "worst_clips_compared",
]
