"""Where do two CPUs (or two kernel settings of one CPU) first disagree?

Runs the smoke profile's pipeline stage by stage in child processes, one per setting (environment
variables such as ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_CBWR, NPY_DISABLE_CPU_FEATURES),
and compares each stage with the first setting's: the generated files (bytes), the log-mel input of
the first training clip, the pretrained encoders, the initial weights, then the step losses and
test metrics of tpavi and thesis (float32, as the report trains) and the first steps in float64
(`avs_lib`'s regression check, tests/test_smoke_regression.py). Another CPU perturbs rounding the
way another kernel setting does; the differences printed are what the tolerances must absorb.

    python benchmarks/cross_cpu_drift.py --out benchmarks/results/cross_cpu_drift.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "aten_default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl_cbwr_compatible": {"MKL_CBWR": "COMPATIBLE"},
    "numpy_no_avx512": {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL "
                                                    "AVX512_ICL AVX512_SPR"},
}


def _files_digest(root: Path) -> str:
    """sha1 over every generated file's bytes, except the generator's timing record."""
    digest = hashlib.sha1()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "info.json"):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _flat(state: dict) -> np.ndarray:
    import torch
    return torch.cat([v.detach().double().flatten() for k, v in sorted(state.items())
                      if torch.is_floating_point(v)]).numpy()


def stages(work: Path) -> dict:
    """One setting's stages (run in a child process, where the environment has taken effect)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from smoke_replay import replay  # the regression test's float64 replay

    from avs_lib.datatools.profiles import build_config
    from avs_lib.engine.system import AVSSystem
    from avs_lib.engine.train import fit, read_steps, seed_everything
    from avs_lib.report import runs

    torch.set_num_threads(1)
    out: dict = {"cpu_capability": torch.backends.cpu.get_cpu_capability()}
    root = runs.prepare_data("smoke", work / "synth")
    out["data_sha1"] = _files_digest(root)
    from avs_lib.data.avsbench import AVSBenchS4
    arrays = {"logmel": AVSBenchS4(root, "train", image_size=64, crop_labels=False).load_audio(0).numpy()}
    weights = runs.starting_weights("smoke", root, quiet=True)
    for key in ("resnet_weights", "audio_weights"):
        arrays[f"pretrained_{key}"] = _flat(torch.load(weights["model"][key], weights_only=True))
    seed_everything(0)
    arrays["init"] = _flat(AVSSystem(build_config("smoke", "thesis", weights=weights)).state_dict())
    out["float32"] = {}
    for method in ("tpavi", "thesis"):
        cfg = runs.run_config("smoke", method, 0, root, work / "runs", device="cpu", weights=weights, quiet=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(cfg)
        summary = json.loads((cfg.run_dir / "summary.json").read_text())
        out["float32"][method] = {"losses": [s["total"] for s in read_steps(cfg.run_dir)],
                                  "test_f_score_split": summary["test_f_score_split"],
                                  "best_val_miou": summary["best_val_miou"]}
    out["float64"] = {method: replay(root, method) for method in ("tpavi", "thesis")}
    np.savez(work / "arrays.npz", **arrays)
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


def compare(results: dict[str, dict], arrays: dict[str, dict]) -> dict:
    """Each setting against the first: same bytes or not, and the largest relative differences."""
    base_name = next(iter(results))
    base, base_arrays = results[base_name], arrays[base_name]
    table = {}
    for name, res in results.items():
        row: dict = {"cpu_capability": res["cpu_capability"], "data_identical": res["data_sha1"] == base["data_sha1"]}
        for key, value in arrays[name].items():
            row[f"{key}_max_rel"] = _relative(base_arrays[key], value)
        for precision in ("float32", "float64"):
            for method, got in res[precision].items():
                ref = base[precision][method]
                rel = np.abs(np.array(got["losses"]) - ref["losses"]) / np.abs(ref["losses"])
                row[f"{precision}_{method}_loss_rel_by_step"] = [float(f"{r:.3g}") for r in rel]
                for key in set(got) - {"losses"}:
                    row[f"{precision}_{method}_{key}_abs"] = abs(got[key] - ref[key])
        table[name] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        (args.child / "stages.json").write_text(json.dumps(stages(args.child)))
        return
    results, arrays = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings:
            work = Path(tmp) / name
            work.mkdir()
            env = {**os.environ, **SETTINGS[name], "OMP_NUM_THREADS": "1"}
            subprocess.run([sys.executable, __file__, "--child", str(work)], env=env, check=True)
            results[name] = json.loads((work / "stages.json").read_text())
            with np.load(work / "arrays.npz") as stored:
                arrays[name] = {k: stored[k] for k in stored.files}
            print(f"{name}: done ({results[name]['cpu_capability']})", flush=True)
    table = compare(results, arrays)
    text = json.dumps(table, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
