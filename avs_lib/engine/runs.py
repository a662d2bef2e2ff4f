"""One run of a profile, resolved the same way wherever it starts: the CLI's `train` and the
report's grid both call `prepare_data`, `starting_weights` and `run_config`, so
`python -m avs_lib train --profile cpu --method thesis --seed 0` trains exactly the report's run.

Runs are filed by what they read: `runs_dir/{profile}/{dataset}-{digest of the data root}/{method}_seed{seed}`
(`run_folder`), so an S4 report and an MS3 report, or two data roots, never share a run.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from avs_lib.config import (
    ExperimentConfig,
    SyntheticData,
    build_config,
    config_from_dict,
    get_profile,
    to_dict,
)
from avs_lib.configtools import deep_merge
from avs_lib.data.avsbench import LAYOUTS, detect_layout
from avs_lib.data.sidecar import SIDECAR_DIR, read_info
from avs_lib.data.synth import make_profile_dataset, profile_params, synth_info_json
from avs_lib.engine.pretrain import PRETRAINED_FOLDER, ensure_pretrained, weight_overrides_from

META_FILES = tuple(layout.csv_name for layout in LAYOUTS.values())


def data_root_of(profile: str, data_root: str | Path | None = None) -> Path:
    """The root a profile reads: the one given, else the profile's own."""
    return Path(data_root if data_root is not None else get_profile(profile).data_root)


def prepare_data(profile: str, data_root: str | Path | None = None, progress: bool = False,
                 overrides: list[str] | dict[str, Any] | None = None) -> Path:
    """The dataset root of a run, as given (or the profile's own), made absolute; never another
    folder, and an existing dataset is never replaced.

    A synthetic profile generates its data there when the folder holds no dataset yet (and says
    so). A synthetic dataset made with other parameters than the profile's is used as it is, with
    a warning that names the root. Any other root must already hold an AVSBench dataset. Given the
    runs' `overrides` (a list, even empty), the root must also hold the subset and the audio
    folder those runs read (`check_reads`), so a wrong root fails here and not in a notebook.
    """
    spec = get_profile(profile)
    root = data_root_of(profile, data_root).resolve()
    has_meta = any((root / name).is_file() for name in META_FILES)
    if spec.synthetic is not None and not has_meta:
        info = make_profile_dataset(root, spec.synthetic, progress=progress)
        print(f"generated the {profile} profile's synthetic dataset at {root} in {info.seconds:.0f} s")
        return root
    if not has_meta:
        raise FileNotFoundError(
            f"no AVSBench dataset at {root} (expected {' or '.join(META_FILES)} there); give the "
            f"dataset's root (--data-root / DATA_ROOT), or use a synthetic profile to generate one"
        )
    if spec.synthetic is not None and (root / SIDECAR_DIR).is_dir() and not same_synthetic(root, spec.synthetic):
        warnings.warn(f"{root} holds a synthetic dataset made with other parameters (or another generator "
                      f"version) than the {profile} profile's; using it as it is (delete it to regenerate)",
                      stacklevel=2)
    if overrides is not None:
        check_reads(root, build_config(profile, overrides=overrides))
    return root


def check_reads(root: Path, cfg: ExperimentConfig) -> None:
    """Refuse a root that lacks the subset's metadata or the audio folder `cfg` reads, naming the
    flag that fixes it: an MS3 root read as S4, a log-mel-only tree read as WAV."""
    data = cfg.data
    wanted = root / LAYOUTS[data.dataset].csv_name
    if not wanted.is_file():
        other = LAYOUTS["s4" if data.dataset == "ms3" else "ms3"]
        raise FileNotFoundError(
            f"{wanted} not found: the runs read data.dataset={data.dataset}, but {root} holds {other.csv_name} "
            f"({other.name.upper()}; check-data detects it); pass --set data.dataset={other.name}"
        )
    folders = {"wav": "audio_wav", "pkl": "audio_log_mel"}
    audio = root / f"{data.dataset}_data" / folders[data.audio]
    if not audio.is_dir():
        there = [kind for kind, name in folders.items() if (audio.parent / name).is_dir()]
        fix = f"; this tree has {folders[there[0]]}/: pass --set data.audio={there[0]}" if there else ""
        raise FileNotFoundError(f"{audio} not found: the runs read data.audio={data.audio}{fix}")


def data_key(dataset: str, data_root: str | Path) -> str:
    """The folder that files a profile's runs by the data they read: "{dataset}-{6 hex digits of
    the absolute data root}" ("s4-1a2b3c")."""
    where = str(Path(data_root).resolve())
    return f"{dataset}-{hashlib.sha256(where.encode()).hexdigest()[:6]}"


def run_folder(profile: str, data_root: str | Path, runs_dir: str | Path = "runs",
               overrides: list[str] | dict[str, Any] | None = None) -> Path:
    """Where the runs of `profile` on `data_root` (with `overrides`) are: the folder the notebooks
    read results from, and crop_label_review.csv is written to. Without `overrides`, the subset is
    the one whose metadata the root holds (MS3 when only ms3_meta_data.csv is there)."""
    if overrides is not None:
        dataset = build_config(profile, overrides=overrides).data.dataset
    else:
        try:
            dataset = detect_layout(data_root).name
        except (FileNotFoundError, ValueError):  # no dataset yet, or both subsets: S4, the default
            dataset = "s4"
    return Path(runs_dir) / profile / data_key(dataset, data_root)


def same_synthetic(root: Path, data: SyntheticData) -> bool:
    """Whether the synthetic dataset at `root` is the one the profile's settings would generate."""
    return read_info(root) == synth_info_json(profile_params(data))


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


def starting_weights(
    profile: str,
    data_root: str | Path,
    resnet_weights: str | None = None,
    vggish_weights: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Config overrides for where the encoders start.

    Local weight files given by the user win. Without them, a profile with a pretraining recipe
    (`Profile.pretrain`) on synthetic data starts from encoders pretrained on `data_root`'s
    training split (the recipe needs the generator's per-object truth), made once into
    `data_root/pretrained/` and reused while data and recipe are unchanged; anything else starts
    from random init (the model builder says so).
    """
    if resnet_weights is not None or vggish_weights is not None:
        return weight_overrides(resnet_weights, vggish_weights)
    recipe = get_profile(profile).pretrain
    root = Path(data_root)
    if recipe is None or not (root / SIDECAR_DIR).is_dir():
        return {}
    report = ensure_pretrained(root, root / PRETRAINED_FOLDER, recipe, quiet=quiet)
    return weight_overrides_from(report)


def run_config(
    profile: str,
    method: str | None,
    seed: int,
    data_root: str | Path,
    runs_dir: str | Path = "runs",
    device: str = "auto",
    weights: dict[str, Any] | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    yaml_file: str | Path | None = None,
    quiet: bool = False,
) -> ExperimentConfig:
    """The resolved config of one run, written to `run_folder(...)/{method}_seed{seed}`.

    The data root is stored absolute: a relative one would name another folder when the run is
    looked at from elsewhere (a notebook runs in notebooks/, `make` in the repository root). It is
    placed before the config is validated, so its messages name the root given.
    """
    root = str(Path(data_root).resolve())
    cfg = build_config(profile, method, yaml_file=yaml_file, overrides=overrides, weights=weights,
                       data={"root": root})
    placed = {"output_dir": str(Path(runs_dir) / profile / data_key(cfg.data.dataset, root)),
              "device": device, "quiet": quiet, "seed": seed}
    return config_from_dict(deep_merge(to_dict(cfg), placed))


__all__ = ["check_reads", "data_key", "data_root_of", "prepare_data", "run_config", "run_folder", "starting_weights",
           "weight_overrides"]
