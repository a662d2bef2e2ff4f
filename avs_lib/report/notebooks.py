"""Run the numbered notebooks with papermill, in order, failing loudly with the notebook and cell."""

from __future__ import annotations

import os
from pathlib import Path

from avs_lib.engine.runs import data_root_of

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_paths(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The report's notebooks, `01_...ipynb` to `05_...ipynb`, in reading order."""
    paths = sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) found in {directory}")
    return paths


def _from_notebooks(path: str | Path, directory: Path = NOTEBOOK_DIR) -> str:
    """`path` (relative to the current directory, or absolute) as seen from the notebooks' folder."""
    return os.path.relpath(Path(path).resolve(), directory)


def run_notebooks(
    profile: str = "cpu",
    data_root: str | None = None,
    runs_dir: str = "runs",
    device: str = "auto",
    notebooks: list[str] | None = None,
    output_dir: Path | None = None,
    extra_parameters: dict | None = None,
) -> list[Path]:
    """Execute the notebooks in place (or into `output_dir`) with the report's parameters.

    The parameters are injected into each notebook's `parameters` cell; a notebook ignores the
    ones it does not declare. A failing cell raises `RuntimeError` naming the notebook and the cell.
    """
    import papermill as pm

    selected = notebook_paths()
    if notebooks:
        wanted = set(notebooks)
        selected = [p for p in selected if p.name in wanted or p.stem in wanted]
        missing = wanted - {p.name for p in selected} - {p.stem for p in selected}
        if missing:
            raise ValueError(f"unknown notebook(s) {sorted(missing)}; have {[p.name for p in notebook_paths()]}")
    # papermill runs each notebook in the folder it is written to (notebooks/, or `output_dir`,
    # where nbval reruns it later): paths given relative to where the caller stands (the
    # repository root for `make report`) are re-expressed relative to that folder.
    out_dir = Path(output_dir).resolve() if output_dir else NOTEBOOK_DIR
    root = data_root_of(profile, data_root)  # the profile's own root when none is given
    params = {"PROFILE": profile, "DATA_ROOT": _from_notebooks(root, out_dir),
              "RUNS_DIR": _from_notebooks(runs_dir, out_dir), "DEVICE": device}
    for name, value in (extra_parameters or {}).items():
        params[name] = _from_notebooks(value, out_dir) if name.endswith(("_DIR", "_ROOT")) and value else value
    written = []
    for path in selected:
        out = out_dir / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            pm.execute_notebook(str(path), str(out), parameters=params, cwd=str(out.parent),
                                kernel_name="python3", progress_bar=False)
        except pm.PapermillExecutionError as err:
            raise RuntimeError(
                f"{path.name}: cell {err.exec_count} failed with {err.ename}: {err.evalue} "
                f"(executed notebook with the traceback: {out})"
            ) from err
        written.append(out)
    return written
