"""The README's mask-browser screenshots, taken in JupyterLab over the report's trained runs.

    python tools/browser_screenshots.py --runs-dir runs --profile cpu [--out figures]

Opens a notebook whose one cell builds the mask browser exactly as notebook 05 does
(`inspection.RunPredictor` over the runs' test clips), in headless Chromium, and saves four
pictures of the widget: mask_browser_initial.png (the first test clip, frame 1),
mask_browser_frame.png (frame 2, moved with the keyboard), mask_browser_clip.png (another clip,
picked in the dropdown) and mask_browser_swapped.png (that clip with its swap partner's audio).
The runs offered are the median seeds (by test mIoU) of tpavi and counterfactual, or of every
trained method when neither is there; all four pictures show the first of them (the README says
so, and tests/test_figure_legibility.py holds it to that). The runs are read from
RUNS_DIR/PROFILE/{dataset}-{digest} and the data from the root in the first run's config.yaml. Nothing is written when the runs, their data or the browser are missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jupyter_browser as lab

from avs_lib.atomic import write_bytes_atomically

REPO = Path(__file__).resolve().parents[1]
FIGURE_NAMES = ("initial", "frame", "clip", "swapped")
SHOWN_METHODS = ("tpavi", "counterfactual")  # the baseline and the method trained to listen
FAILURE_DIR = Path(tempfile.gettempdir()) / "browser_screenshots_failed"  # the page when the widget never showed
ACTION_S = 300  # a step runs the model on a whole clip; a cpu report machine can be loaded

NOTEBOOK_CODE = """\
from avs_lib.report import inspection, viz

test_clips = inspection.evaluation_dataset({first_run!r}, {data_root!r})
predictor = inspection.RunPredictor({runs_dir!r}, test_clips, device={device!r}, runs={runs!r})
browser = viz.MaskBrowser(predictor.browser_clips(), predictor.predict, predictor.runs, audio=predictor.audio)
browser
"""


@dataclass(frozen=True)
class Plan:
    """What the screenshots show: which runs, over which data, and the second clip's index."""

    runs_dir: Path
    runs: list[str]
    data_root: Path
    second_clip: int


def shown_runs(runs_dir: Path) -> list[str]:
    """The median-seed run of each shown method (tpavi, counterfactual), or of every method
    trained when neither is; FileNotFoundError when `runs_dir` holds no finished run."""
    from avs_lib.report import experiments

    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no runs folder {runs_dir}: train the report's runs first "
                                "(make report PROFILE=...), or pass the RUNS_DIR and PROFILE that hold them")
    results = experiments.collect_results(runs_dir)
    trained = list(dict.fromkeys(results["method"]))
    methods = [m for m in SHOWN_METHODS if m in trained] or trained
    runs = [experiments.representative_run(results, m) for m in methods]
    missing = [r for r in runs if not (runs_dir / r / "best.pt").is_file()]
    if missing:
        raise FileNotFoundError(f"run(s) {missing} under {runs_dir} have a summary.json but no best.pt")
    return runs


def runs_folder(runs_dir: Path, profile: str) -> Path:
    """Where a profile's runs are: RUNS_DIR/PROFILE/{dataset}-{digest of its data root}
    (`report.runs.run_folder`) when the profile's data are here, else RUNS_DIR/PROFILE."""
    from avs_lib.report.runs import data_root_of, run_folder

    root = data_root_of(profile)
    root = root if root.is_absolute() else REPO / root
    return (run_folder(profile, root, runs_dir) if root.is_dir() else runs_dir / profile).resolve()


def plan(runs_dir: Path) -> Plan:
    """Check the runs and their data before a browser is started; pick the clip to switch to:
    the first one after clip 1 with a swap partner (its swapped-audio picture needs one)."""
    from avs_lib.engine.evaluate import swap_partners
    from avs_lib.report import inspection

    runs = shown_runs(runs_dir)
    data_root = Path(inspection.run_config(runs_dir / runs[0]).data.root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"the data of {runs_dir / runs[0]} (data.root in its config.yaml) "
                                f"is not at {data_root}")
    dataset = inspection.evaluation_dataset(runs_dir / runs[0], data_root)
    partners = swap_partners(dataset)
    swappable = [i for i, p in enumerate(partners) if i > 0 and p is not None]
    if not swappable:
        raise ValueError(f"the test split of {data_root} has no second clip with a swap partner "
                         f"({len(partners)} clips)")
    return Plan(runs_dir, runs, data_root, swappable[0])


def take_screenshots(p: Plan, out: Path, device: str) -> dict[str, str]:
    """Drive the browser through its four views and put the four PNGs in `out`; returns each
    view's status line."""
    code = NOTEBOOK_CODE.format(first_run=str(p.runs_dir / p.runs[0]), data_root=str(p.data_root),
                                runs_dir=str(p.runs_dir), device=device, runs=p.runs)
    statuses: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="browser_screenshots_") as tmp:
        work = Path(tmp)
        (work / "lab").mkdir()
        lab.write_notebook(work / "lab" / "mask_browser.ipynb", code)
        # The kernel imports this checkout's avs_lib, whatever is installed.
        env = {"PYTHONPATH": os.pathsep.join(x for x in (str(REPO), os.environ.get("PYTHONPATH", "")) if x)}
        shots = work / "shots"
        with lab.jupyterlab(work / "lab", work, env) as server, \
                lab.notebook_page(server, "mask_browser.ipynb", work / "chromium", FAILURE_DIR, ACTION_S) as page:
            errors = lab.widget_errors(page)
            if errors:
                raise lab.BrowserError("; ".join(errors))
            statuses["initial"] = _shot(page, shots, "initial")

            handle = lab.control(page, ".widget-slider", "frame").locator(".noUi-handle").first
            handle.focus()
            lab.act(page, lambda: handle.press("ArrowRight"), "frame 2/", timeout_s=ACTION_S)
            statuses["frame"] = _shot(page, shots, "frame")

            dropdown = lab.control(page, ".widget-dropdown", "clip").locator("select")
            name = lab.option_label(dropdown.locator("option").nth(p.second_clip).inner_text()).split()[0]
            lab.act(page, lambda: dropdown.select_option(index=p.second_clip), f"{name} (", timeout_s=ACTION_S)
            statuses["clip"] = _shot(page, shots, "clip")

            toggle = lab.widget(page).locator("button", has_text="swapped audio")
            # A model that ignores the audio predicts the same mask: the picture need not change.
            lab.act(page, toggle.click, "swapped audio from", image_changes=False, timeout_s=ACTION_S)
            statuses["swapped"] = _shot(page, shots, "swapped")
        # All four or none: a failed step leaves the pictures already in `out` as they were.
        for view in FIGURE_NAMES:
            name = f"mask_browser_{view}.png"
            write_bytes_atomically(out / name, (shots / name).read_bytes())
    return statuses


def _shot(page, out: Path, view: str) -> str:
    lab.screenshot_widget(page, out / f"mask_browser_{view}.png")
    return lab.status_text(page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs", help="the folder of profiles (default: runs)")
    parser.add_argument("--profile", default="cpu", help="the profile whose runs are shown (default: cpu)")
    parser.add_argument("--out", type=Path, default=REPO / "figures", help="where the PNGs go (default: figures)")
    parser.add_argument("--device", default="cpu", help="torch device for the kernel's predictions (default: cpu)")
    args = parser.parse_args(argv)
    runs_dir = runs_folder(args.runs_dir, args.profile)
    try:
        p = plan(runs_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    missing = lab.missing_requirements()
    if missing:
        print(f"error: not installed: {', '.join(missing)} (make browser-deps installs them)", file=sys.stderr)
        return 2
    print(f"runs {', '.join(p.runs)} of {runs_dir}; data {p.data_root}; second clip #{p.second_clip}")
    try:
        statuses = take_screenshots(p, args.out.resolve(), args.device)
    except lab.BrowserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for view in FIGURE_NAMES:
        print(f"{args.out / f'mask_browser_{view}.png'}: {statuses[view]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
