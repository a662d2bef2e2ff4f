"""Run the numbered notebooks with papermill, in order, failing loudly with the notebook and cell.

The `cpu` profile's report is committed, executed in place (notebooks/, figures/); any other
profile or output folder writes notebooks, HTML and figures under reports/<profile>/ (or there).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import nbformat
from jupyter_client import AsyncKernelManager

from avs_lib.datatools.profiles import build_config
from avs_lib.engine.evaluate import refuse_inside_dataset
from avs_lib.report.runs import data_root_of
from avs_lib.report.slides import export_html

REPO_DIR = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_DIR / "notebooks"
FIGURES_DIR = REPO_DIR / "figures"
REPORTS_DIR = REPO_DIR / "reports"
SHARED_PARAMETERS = ("PROFILE", "DATA_ROOT", "RUNS_DIR", "DEVICE", "SEEDS", "METHODS", "FIGURES_DIR",
                     "RESNET_WEIGHTS", "VGGISH_WEIGHTS")  # declared by every notebook
COMMITTED_PROFILE = "cpu"  # the profile whose executed notebooks and figures are committed


# A Unix socket path holds at most ~107 bytes; the kernel appends "-<port>" to the prefix.
IPC_PATH_LIMIT = 96


class QuietShutdownKernelManager(AsyncKernelManager):
    """No SIGINT before a shutdown (ipykernel logged "KeyboardInterrupt caught in kernel"), and on POSIX
    private IPC sockets, not unencrypted TCP (warned about in every notebook, open to any local user)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        ip = os.path.join(tempfile.gettempdir(), f"avs-kernel-{uuid.uuid4().hex[:12]}")
        if os.name == "posix" and len(ip) <= IPC_PATH_LIMIT:  # else TCP: a longer socket path fails
            self.transport, self.ip = "ipc", ip

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


@dataclass(frozen=True)
class Destination:
    """Where one report run writes: executed notebooks, figures, and whether to export HTML."""

    notebooks: Path
    figures: Path
    html: bool


# Python's warning format: "file:line: SomeWarning: message", then the source line, indented.
_WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ")


@dataclass
class WarningsOnce:
    """The report's log with each warning shown once (every kernel, and torch's resets of the warnings
    registry, would repeat them); the executed notebooks keep every warning where it was given."""

    log: TextIO
    seen: set[str] = field(default_factory=set)
    _skip_source: bool = field(default=False, init=False, repr=False)  # the next line is a dropped warning's source

    def write(self, text: str) -> int:
        kept = []
        for line in text.splitlines(keepends=True):
            source, self._skip_source = self._skip_source and line.startswith("  "), False
            if source:
                continue
            if _WARNING_LINE.match(line):
                if line.strip() in self.seen:
                    self._skip_source = True
                    continue
                self.seen.add(line.strip())
            kept.append(line)
        return self.log.write("".join(kept))

    def flush(self) -> None:
        self.log.flush()


def report_destination(profile: str, out: str | Path | None = None,
                       data_root: str | Path | None = None) -> Destination:
    """In place for the committed profile without `out`; else `out` (default reports/<profile>/)
    with HTML. The committed folders and dataset folders are refused."""
    if out is None and profile == COMMITTED_PROFILE:
        return Destination(NOTEBOOK_DIR, FIGURES_DIR, html=False)
    folder = Path(out).resolve() if out is not None else REPORTS_DIR / profile
    if folder in (NOTEBOOK_DIR, FIGURES_DIR):
        raise ValueError(f"--out {folder} would overwrite the committed report; choose another folder "
                         f"(default for profile {profile!r}: {REPORTS_DIR / profile})")
    refuse_inside_dataset(folder, data_root_of(profile, data_root), "--out")
    return Destination(folder, folder / "figures", html=True)


def notebook_paths(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The report's numbered notebooks, in reading order."""
    paths = sorted(directory.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) found in {directory}")
    return paths


def _from_notebooks(path: str | Path, directory: Path = NOTEBOOK_DIR) -> str:
    """`path` (relative to the current directory, or absolute) as seen from the notebooks' folder."""
    return os.path.relpath(Path(path).resolve(), directory)


def _select(notebooks: list[str] | None) -> list[Path]:
    selected = notebook_paths()
    if notebooks:
        wanted = set(notebooks)
        selected = [p for p in selected if p.name in wanted or p.stem in wanted]
        missing = wanted - {p.name for p in selected} - {p.stem for p in selected}
        if missing:
            raise ValueError(f"unknown notebook(s) {sorted(missing)}; have {[p.name for p in notebook_paths()]}")
    return selected


SAVED_FIGURE = re.compile(r"save_figure\(\s*\w+\s*,\s*(f?)(['\"])(.+?)\2")


def figure_patterns(paths: list[Path]) -> list[re.Pattern]:
    """The `NAME.png` patterns the notebooks' `viz.save_figure` calls save under ({...} matches any text)."""
    patterns = []
    for path in paths:
        for cell in nbformat.read(path, as_version=4).cells:
            for is_f, _, name in SAVED_FIGURE.findall(cell.source) if cell.cell_type == "code" else ():
                parts = re.split(r"\{[^}]*\}", name) if is_f else [name]
                patterns.append(re.compile(".+".join(map(re.escape, parts)) + r"\.png"))
    return patterns


def remove_stale_figures(figures_dir: str | Path, paths: list[Path], since: float) -> list[Path]:
    """Delete the PNGs a notebook of `paths` names but none wrote since `since` (figures this run no
    longer draws); files no notebook names are kept. Returns the deleted paths."""
    patterns = figure_patterns(paths)
    stale = [p for p in sorted(Path(figures_dir).glob("*.png"))
             if p.stat().st_mtime < since and any(r.fullmatch(p.name) for r in patterns)]
    for path in stale:
        path.unlink()
    return stale


def run_notebooks(profile: str = "cpu", data_root: str | None = None, runs_dir: str = "runs", device: str = "auto",
                  notebooks: list[str] | None = None, output_dir: Path | None = None,
                  extra_parameters: dict | None = None, figures_dir: str | Path | None = None, html: bool = False,
                  log: TextIO | None = None) -> list[Path]:
    """Execute the notebooks into `output_dir`, streaming their output to `log`; a failing cell raises
    `RuntimeError` naming notebook and cell. A full run removes stale figures."""
    extra = extra_parameters or {}
    for method in extra.get("METHODS") or [None]:  # the overrides checked before any notebook starts
        build_config(profile, method, overrides=list(extra.get("OVERRIDES") or []))
    import papermill as pm

    selected = _select(notebooks)
    # papermill runs each notebook in the folder it is written to: relative paths are re-expressed from there.
    out_dir = Path(output_dir).resolve() if output_dir else NOTEBOOK_DIR
    root = data_root_of(profile, data_root)  # the profile's own root when none is given
    params = {"PROFILE": profile, "DATA_ROOT": _from_notebooks(root, out_dir),
              "RUNS_DIR": _from_notebooks(runs_dir, out_dir), "DEVICE": device}
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        params["FIGURES_DIR"] = _from_notebooks(figures_dir, out_dir)
    for name, value in extra.items():
        params[name] = _from_notebooks(value, out_dir) if name.endswith(("_DIR", "_ROOT")) and value else value
    log = WarningsOnce(log) if log is not None else None
    streams = {"stdout_file": log, "stderr_file": log} if log is not None else {}
    say = (lambda text: print(f"[report] {text}", file=log, flush=True)) if log is not None else (lambda text: None)
    written, run_start = [], time.time() - 2  # 2 s: file systems that keep whole seconds
    for path in selected:
        out = out_dir / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        say(f"{path.stem}: started {time.strftime('%H:%M:%S')}")
        declared = pm.inspect_notebook(str(path))
        # Parameters only some notebooks declare go only to those: papermill warns about the others.
        given = {k: v for k, v in params.items() if k in declared or k in SHARED_PARAMETERS}
        try:
            pm.execute_notebook(str(path), str(out), parameters=given, cwd=str(out.parent), kernel_name="python3",
                                progress_bar=False, kernel_manager_class=QuietShutdownKernelManager, **streams)
        except pm.PapermillExecutionError as err:
            raise RuntimeError(f"{path.name}: cell {err.exec_count} failed with {err.ename}: {err.evalue} "
                               f"(executed notebook with the traceback: {out})") from err
        if html:
            export_html([out], out.parent)  # out.html beside it
        say(f"{path.stem}: done in {time.perf_counter() - started:.0f} s -> {out}")
        written.append(out)
    if not notebooks and figures_dir is not None:  # the whole report ran: what it did not draw is stale
        for stale in remove_stale_figures(figures_dir, selected, run_start):
            say(f"removed {stale}: no notebook drew it in this run")
    return written
