"""One run of a profile, resolved the same way by the CLI's `train` and the report's grid.

Runs are filed by what they read: `runs_dir/{profile}/{dataset}-{digest of the data root}/{method}_seed{seed}`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from avs_lib.config import ExperimentConfig, config_from_dict, to_dict
from avs_lib.configtools import deep_merge
from avs_lib.data.avsbench import LAYOUTS, detect_layout
from avs_lib.data.sidecar import SIDECAR_DIR, read_info
from avs_lib.datatools.pretrain import PRETRAINED_FOLDER, ensure_pretrained, weight_overrides_from
from avs_lib.datatools.profiles import SyntheticData, build_config, get_profile
from avs_lib.datatools.synth import make_profile_dataset, profile_params, synth_info_json
from avs_lib.engine.provenance import PROVENANCE_FILE

META_FILES = tuple(layout.csv_name for layout in LAYOUTS.values())


def data_root_of(profile: str, data_root: str | Path | None = None) -> Path:
    return Path(data_root if data_root is not None else get_profile(profile).data_root)


def prepare_data(profile: str, data_root: str | Path | None = None, progress: bool = False,
                 overrides: list[str] | dict[str, Any] | None = None) -> Path:
    """The absolute dataset root, generated for a synthetic profile when empty (an existing one is never
    replaced); with `overrides` it must hold what those runs read, so a wrong root fails here, not in a notebook."""
    spec = get_profile(profile)
    root = data_root_of(profile, data_root).resolve()
    has_meta = any((root / name).is_file() for name in META_FILES)
    if spec.synthetic is not None and not has_meta:
        info = make_profile_dataset(root, spec.synthetic, progress=progress)
        print(f"generated the {profile} profile's synthetic dataset at {root} in {info.seconds:.0f} s")
        return root
    if not has_meta:
        raise FileNotFoundError(f"no AVSBench dataset at {root} (expected {' or '.join(META_FILES)} there); give the "
                                "dataset's root (--data-root / DATA_ROOT), or use a synthetic profile to generate one")
    if spec.synthetic is not None and (root / SIDECAR_DIR).is_dir() and not same_synthetic(root, spec.synthetic):
        warnings.warn(f"{root} holds a synthetic dataset made with other parameters (or another generator "
                      f"version) than the {profile} profile's; using it as it is (delete it to regenerate)",
                      stacklevel=2)
    if overrides is not None:
        check_reads(root, build_config(profile, overrides=overrides))
    return root


def check_reads(root: Path, cfg: ExperimentConfig) -> None:
    """Refuse a root lacking the subset's metadata or the audio folder `cfg` reads, naming the fixing flag."""
    data = cfg.data
    wanted = root / LAYOUTS[data.dataset].csv_name
    if not wanted.is_file():
        other = LAYOUTS["s4" if data.dataset == "ms3" else "ms3"]
        raise FileNotFoundError(f"{wanted} not found: the runs read data.dataset={data.dataset}, but {root} holds "
                                f"{other.csv_name} ({other.name.upper()}; check-data detects it); pass --set "
                                f"data.dataset={other.name}")
    folders = {"wav": "audio_wav", "pkl": "audio_log_mel"}
    audio = root / f"{data.dataset}_data" / folders[data.audio]
    if not audio.is_dir():
        there = [kind for kind, name in folders.items() if (audio.parent / name).is_dir()]
        fix = f"; this tree has {folders[there[0]]}/: pass --set data.audio={there[0]}" if there else ""
        raise FileNotFoundError(f"{audio} not found: the runs read data.audio={data.audio}{fix}")


def data_key(dataset: str, data_root: str | Path) -> str:
    """"{dataset}-{6 hex digits of the absolute data root}" ("s4-1a2b3c"): runs filed by the data they read."""
    where = str(Path(data_root).resolve())
    return f"{dataset}-{hashlib.sha256(where.encode()).hexdigest()[:6]}"


def run_folder(profile: str, data_root: str | Path, runs_dir: str | Path = "runs",
               overrides: list[str] | dict[str, Any] | None = None) -> Path:
    """Where the runs of `profile` on `data_root` are; without `overrides`, of the subset the root holds."""
    if overrides is not None:
        dataset = build_config(profile, overrides=overrides).data.dataset
    else:
        try:
            dataset = detect_layout(data_root).name
        except (FileNotFoundError, ValueError):  # no dataset yet, or both subsets: S4, the default
            dataset = "s4"
    return Path(runs_dir) / profile / data_key(dataset, data_root)


def same_synthetic(root: Path, data: SyntheticData) -> bool:
    return read_info(root) == synth_info_json(profile_params(data))


def weight_overrides(resnet_weights: str | None = None, vggish_weights: str | None = None) -> dict[str, Any]:
    """Overrides that load local pretrained weights; the ResNet file also starts a separate crop trunk."""
    model: dict[str, Any] = {}
    if resnet_weights is not None:
        model["resnet_weights"] = model["crop_weights"] = str(resnet_weights)
    if vggish_weights is not None:
        model["vggish_weights"] = str(vggish_weights)
    return {"model": model} if model else {}


def starting_weights(profile: str, data_root: str | Path, resnet_weights: str | None = None,
                     vggish_weights: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Where the encoders start: the user's files, else (a synthetic profile with a pretraining
    recipe) encoders pretrained once into `data_root/pretrained/`, else random init."""
    if resnet_weights is not None or vggish_weights is not None:
        return weight_overrides(resnet_weights, vggish_weights)
    recipe = get_profile(profile).pretrain
    root = Path(data_root)
    if recipe is None or not (root / SIDECAR_DIR).is_dir():
        return {}
    return weight_overrides_from(ensure_pretrained(root, root / PRETRAINED_FOLDER, recipe, quiet=quiet))


def run_config(profile: str, method: str | None, seed: int, data_root: str | Path, runs_dir: str | Path = "runs",
               device: str = "auto", weights: dict[str, Any] | None = None,
               overrides: list[str] | dict[str, Any] | None = None, yaml_file: str | Path | None = None,
               quiet: bool = False) -> ExperimentConfig:
    """The resolved config of one run, with its data root absolute (placed before validation, so
    messages name the root given)."""
    root = str(Path(data_root).resolve())
    cfg = build_config(profile, method, yaml_file=yaml_file, overrides=overrides, weights=weights,
                       data={"root": root})
    placed = {"output_dir": str(Path(runs_dir) / profile / data_key(cfg.data.dataset, root)),
              "device": device, "quiet": quiet, "seed": seed}
    return config_from_dict(deep_merge(to_dict(cfg), placed))


def read_provenance(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's provenance record, or None when it has none or it is not valid JSON."""
    try:
        record = json.loads((Path(run_dir) / PROVENANCE_FILE).read_text())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def data_change(saved: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """Why the data differs from a run's recorded fingerprint, in a few words; None when the same."""
    if saved is None:
        return "no data fingerprint recorded (trained before runs recorded one)"
    for part, what in (("metadata", "metadata CSV"), ("frames", "frames"), ("masks", "masks"),
                       ("audio", "audio files")):
        if saved.get(part) != now.get(part):
            return f"{what} changed" + ("" if part == "metadata" else " (sizes or modification times)")
    old, new = saved.get("crop_labels") or {}, now.get("crop_labels") or {}
    changed = sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
    if changed:
        more = f", and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"crop labels changed ({changed[0]}{more})"
    return None
