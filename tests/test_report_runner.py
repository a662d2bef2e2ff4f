"""How `make report` / `python -m avs_lib report` runs the notebooks: where the outputs go, what it
prints while it works, how long it says a grid will take, and papermill called directly."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from avs_lib.cli import main
from avs_lib.datatools.profiles import build_config
from avs_lib.report import experiments, notebooks
from avs_lib.report.notebooks import (
    FIGURES_DIR,
    NOTEBOOK_DIR,
    REPO_DIR,
    REPORTS_DIR,
    report_destination,
)

# The README's example of papermill called directly, run as written from the repository root.
PAPERMILL_EXAMPLE = """mkdir -p reports/smoke
papermill notebooks/01_data_inspection.ipynb reports/smoke/01_data_inspection.ipynb \\
  -p PROFILE smoke -p DATA_ROOT data/synth -p RUNS_DIR runs -p FIGURES_DIR reports/smoke/figures"""

# ---------------------------------------------------------------- where the outputs go


def test_the_cpu_profile_writes_the_committed_report_in_place():
    assert report_destination("cpu") == notebooks.Destination(NOTEBOOK_DIR, FIGURES_DIR, html=False)


def test_any_other_profile_writes_under_reports_profile_with_html():
    where = report_destination("paper")
    assert where == notebooks.Destination(REPORTS_DIR / "paper", REPORTS_DIR / "paper" / "figures", html=True)


def test_an_explicit_out_moves_even_the_cpu_report_out_of_place(tmp_path):
    assert report_destination("cpu", tmp_path) == notebooks.Destination(tmp_path, tmp_path / "figures", html=True)


@pytest.mark.parametrize("folder", [NOTEBOOK_DIR, FIGURES_DIR], ids=["notebooks", "figures"])
def test_out_onto_the_committed_report_is_refused(folder):
    with pytest.raises(ValueError, match="committed report"):
        report_destination("paper", folder)


def _fake_papermill(monkeypatch):
    """papermill.execute_notebook that copies the notebook and prints, recording its parameters."""
    import papermill

    calls = []

    def execute(source, out, parameters, cwd, stdout_file=None, **kwargs):
        calls.append((Path(source).stem, parameters))
        Path(out).write_text(Path(source).read_text())
        if stdout_file is not None:
            stdout_file.write("cell output\n")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return calls


def test_run_notebooks_exports_html_and_logs_each_notebook(tmp_path, monkeypatch, capsys):
    _fake_papermill(monkeypatch)
    notebooks.run_notebooks(profile="paper", notebooks=["04_evaluation"], output_dir=tmp_path,
                            figures_dir=tmp_path / "figures", html=True, log=sys.stdout)
    assert "<html" in (tmp_path / "04_evaluation.html").read_text()
    printed = capsys.readouterr().out
    assert "[report] 04_evaluation: started" in printed and "cell output" in printed
    assert "[report] 04_evaluation: done in" in printed


# A cell that makes the kernel record a SIGINT arriving once the cell is over (ipykernel puts the
# handler saved before a cell back after it: the cell replaces that saved handler).
RECORD_SIGINT = ("import pathlib\n"
                 "get_ipython().kernel.saved_sigint_handler = lambda *a: pathlib.Path('interrupted').write_text('')")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("manager", ["quiet", "jupyter_client's"])
def test_a_finished_notebook_shuts_its_kernel_down_without_an_interrupt(tmp_path, manager, capfd):
    """jupyter_client interrupts a kernel before shutting it down; landing in the last cell's reply,
    that SIGINT made ipykernel log "ERROR | KeyboardInterrupt caught in kernel" in the report's log.
    The interrupt shows either as that log line or, landing after the reply, as the recorded handler's
    file: which one is a race, so the control (jupyter_client's manager) accepts either."""
    import papermill
    from jupyter_client import AsyncKernelManager

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(RECORD_SIGINT)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "in.ipynb")
    quiet = manager == "quiet"
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False, kernel_manager_class=
                               notebooks.QuietShutdownKernelManager if quiet else AsyncKernelManager)
    interrupted = (tmp_path / "interrupted").exists() or "KeyboardInterrupt caught in kernel" in capfd.readouterr().err
    assert interrupted is not quiet


RECORD_TRANSPORT = ("import json, pathlib\nfrom ipykernel import get_connection_file\n"
                    "pathlib.Path('transport').write_text(json.load(open(get_connection_file()))['transport'])")


@pytest.mark.timeout(300)
@pytest.mark.skipif(os.name != "posix", reason="IPC sockets are POSIX-only; elsewhere the kernel keeps TCP")
def test_the_report_kernel_talks_over_ipc_and_leaves_no_socket_files(tmp_path, monkeypatch):
    """ipykernel warns "Kernel is running over TCP without encryption" in every notebook's log."""
    import papermill

    sockets = Path(tempfile.mkdtemp(prefix="avs-t-", dir="/tmp" if os.path.isdir("/tmp") else None))
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))  # short: pytest's tmp_path can be too long
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(RECORD_TRANSPORT)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "in.ipynb")
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False,
                               kernel_manager_class=notebooks.QuietShutdownKernelManager)
    assert (tmp_path / "transport").read_text() == "ipc"
    assert list(sockets.iterdir()) == []  # the sockets are removed with the kernel
    sockets.rmdir()


def test_the_report_kernel_keeps_tcp_where_a_socket_path_would_be_too_long(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("x" * notebooks.IPC_PATH_LIMIT)))
    assert notebooks.QuietShutdownKernelManager(kernel_name="python3").transport == "tcp"


def test_run_notebooks_uses_the_quiet_kernel_manager(tmp_path, monkeypatch):
    import papermill

    managers = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, out, **kwargs: (
        managers.append(kwargs["kernel_manager_class"]), Path(out).write_text(Path(source).read_text())))
    notebooks.run_notebooks(profile="paper", notebooks=["01_data_inspection"], output_dir=tmp_path)
    assert managers == [notebooks.QuietShutdownKernelManager]


def test_overrides_go_only_to_the_notebooks_that_declare_them(tmp_path, monkeypatch):
    calls = _fake_papermill(monkeypatch)
    notebooks.run_notebooks(profile="paper", notebooks=["03_training", "04_evaluation"], output_dir=tmp_path,
                            extra_parameters={"OVERRIDES": ["data.dataset=ms3"], "KEEP_STALE": True})
    given = dict(calls)
    assert given["03_training"]["OVERRIDES"] == ["data.dataset=ms3"] and given["03_training"]["KEEP_STALE"]
    assert "OVERRIDES" not in given["04_evaluation"] and given["04_evaluation"]["PROFILE"] == "paper"


def _report_call(monkeypatch, argv):
    seen = {}
    monkeypatch.setattr(notebooks, "run_notebooks", lambda **kwargs: seen.update(kwargs))
    assert main(["report", *argv]) == 0
    return seen


def test_report_cli_sends_a_paper_report_to_reports_paper(monkeypatch):
    seen = _report_call(monkeypatch, ["--profile", "paper", "--methods", "tpavi", "--seeds", "0"])
    assert seen["output_dir"] == REPORTS_DIR / "paper" and seen["figures_dir"] == REPORTS_DIR / "paper" / "figures"
    assert seen["html"] is True


def test_report_cli_forwards_set_and_keep_stale_runs(monkeypatch, tmp_path):
    seen = _report_call(monkeypatch, ["--profile", "paper", "--methods", "tpavi", "--seeds", "0", "--out", str(tmp_path),
                                      "--set", "data.dataset=ms3", "--set", "optim.epochs=1", "--keep-stale-runs"])
    assert seen["output_dir"] == tmp_path
    assert seen["extra_parameters"] == {"OVERRIDES": ["data.dataset=ms3", "optim.epochs=1"], "KEEP_STALE": True,
                                        "METHODS": ["tpavi"], "SEEDS": [0]}


def test_report_without_a_grid_stops_before_any_notebook(monkeypatch, capsys):
    monkeypatch.setattr(notebooks, "run_notebooks", lambda **kwargs: pytest.fail("a notebook ran"))
    assert main(["report", "--profile", "paper"]) == 2
    assert "pass METHODS and SEEDS explicitly" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_report_runs_the_command_of_the_paper_path_test():
    variables = ["PROFILE=paper", "DATA_ROOT=/d", "METHODS=tpavi thesis counterfactual", "SEEDS=0", "OUT=/o",
                 "SET=data.image_size=64 optim.epochs=1", "DEVICE=cpu", f"VENV={Path(sys.executable).parents[1]}"]
    dry = subprocess.run(["make", "-n", "--no-print-directory", "notebooks", *variables], cwd=REPO_DIR,
                         capture_output=True, text=True, check=True).stdout.replace("\\\n", " ")
    line = next(x for x in dry.splitlines() if "-m avs_lib report" in x)
    args = shlex.split(line)
    args = args[args.index("report") + 1:]
    assert args == ["--profile", "paper", "--data-root", "/d", "--runs-dir", "runs", "--device", "cpu",
                    "--methods", "tpavi", "thesis", "counterfactual", "--seeds", "0", "--out", "/o",
                    "--set", "data.image_size=64", "--set", "optim.epochs=1"]


# ---------------------------------------------------------------- what the notebooks compare


def _trained(*methods):
    import pandas as pd

    return pd.DataFrame({"method": list(methods), "seed": [0] * len(methods)})


def test_failure_cases_compare_the_baseline_with_the_thesis_model_when_both_ran():
    assert experiments.failure_pair(_trained("visual_only", "tpavi", "thesis")) == ("tpavi", "thesis")


def test_failure_cases_of_a_grid_of_one_method_show_that_method():
    assert experiments.failure_pair(_trained("tpavi")) == ("tpavi", "tpavi")
    assert experiments.failure_pair(_trained("cross_attention", "tpavi_avm")) == ("cross_attention", "tpavi_avm")


# ---------------------------------------------------------------- how long it takes


def _cfgs(methods_and_seeds):
    return [build_config("smoke", m, seed=s) for m, s in methods_and_seeds]


def test_estimate_times_each_distinct_config_once_and_lays_the_runs_out_on_the_jobs():
    timed = []

    def fake_measure(cfg):
        timed.append(cfg.name)
        return {"tpavi": experiments.RunCost(2.0, 0.5, 4.0), "thesis": experiments.RunCost(3.0)}[cfg.name]

    cfgs = _cfgs([("tpavi", 0), ("tpavi", 1), ("thesis", 0)])
    estimate = experiments.estimate_grid_seconds(cfgs, fake_measure, lambda cfg: experiments.RunWork(10, 6), jobs=2)
    assert sorted(timed) == ["thesis", "tpavi"]  # the seeds of one method share a measurement
    # thesis (30 s, the longest kind: crop losses) starts first on one worker; the two tpavi runs
    # (4 + 2 * 10 + 0.5 * 6 = 27 s each) follow each other on the other: 54 s, not the 42 s of a sum / 2.
    assert estimate.seconds == pytest.approx(2 * 27.0)
    assert estimate.step_seconds == {"tpavi": 2.0, "thesis": 3.0} and estimate.jobs == 2


def test_runs_started_together_both_cache_their_shared_features_and_later_ones_read_them():
    runs = [(10.0, ("vggish",), 5.0)] * 3  # 10 s each, 5 s more for the one(s) computing the cache
    assert experiments._makespan(runs, 2) == pytest.approx(15.0 + 10.0)  # two compute it at once
    assert experiments._makespan(runs, 1) == pytest.approx(15.0 + 10.0 + 10.0)


def test_estimate_never_counts_more_jobs_than_runs():
    estimate = experiments.estimate_grid_seconds(_cfgs([("tpavi", 0)]), lambda cfg: experiments.RunCost(1.0),
                                                 lambda cfg: experiments.RunWork(60), jobs=4)
    assert estimate.jobs == 1 and estimate.seconds == pytest.approx(60.0)
    assert "about 60 s for 1 run(s) on 1 job(s)" in estimate.text()


def test_run_work_counts_capped_steps_validations_and_the_three_test_passes(tiny_synth):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}})
    # smoke: 8 training clips (train_limit), batch 2 -> 4 batches, capped at 3 per epoch, 2 epochs;
    # 4 val and 4 test clips (eval_limit) in batches of 2, a validation after each epoch;
    # last.pt after each epoch and best.pt after each validation; 8 + 4 + 4 clips to cache features of.
    assert experiments.run_work(cfg) == experiments.RunWork(2 * 3, 2 * 2 + 3 * 2, 2 + 2, 8 + 4 + 4)


def test_measure_run_cost_times_real_steps(tiny_synth):
    cfg = build_config("smoke", "tpavi", overrides={"data": {"root": str(tiny_synth)}, "device": "cpu"})
    cost = experiments.measure_run_cost(cfg, steps=1)
    assert cost.train_step > 0 and cost.eval_batch > 0 and cost.setup > 0
    assert cost.checkpoint > 0 and cost.reload > 0


ESTIMATE_TOLERANCE = 0.2  # the printed estimate against the grid as trained: within +-20 %


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_printed_estimate_is_within_20_percent_of_a_measured_smoke_grid(tiny_synth, tmp_path, monkeypatch,
                                                                           capsys):
    """The estimate `train_grid` prints against the time the same grid then takes (start-up, steps,
    validations, checkpoints, the test). Timed in this process's CPU seconds (`process_time` in
    place of `perf_counter`, warm-up and grid alike): with one thread per run that is the wall
    time of an idle core, and other jobs on a shared machine do not decide the test."""
    import time

    from avs_lib.report.grids import Grid

    monkeypatch.setattr(time, "perf_counter", time.process_time)
    printed_at = []
    estimate = experiments.estimate_grid_seconds

    def recorded(*args, **kwargs):
        result = estimate(*args, **kwargs)
        printed_at.append(time.process_time())
        return result

    monkeypatch.setattr(experiments, "estimate_grid_seconds", recorded)
    experiments.train_grid("smoke", Grid(("tpavi", "thesis"), (0, 1)), tiny_synth, tmp_path / "runs",
                           device="cpu", jobs=1, estimate=True)
    measured = time.process_time() - printed_at[0]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("estimate: about"))
    printed = float(line.split("about ")[1].split(" s ")[0])
    assert abs(printed - measured) <= ESTIMATE_TOLERANCE * measured, f"{line}; measured {measured:.1f} s"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_grid_shows_each_warning_once_across_its_warm_up_and_its_runs(tiny_synth, tmp_path):
    """Without weight files every system built (the warm-up's, each run's) warns of its random
    start; the report shows each such warning once."""
    import warnings

    from avs_lib.report.grids import Grid

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        experiments.train_grid("smoke", Grid(("tpavi",), (0, 1)), tiny_synth, tmp_path / "runs", device="cpu",
                               jobs=1, estimate=True)
    random_start = [str(w.message) for w in caught if "no pretrained weights given" in str(w.message)]
    assert random_start and len(random_start) == len(set(random_start)), random_start


def test_each_finished_run_prints_how_much_is_left(capsys):
    progress = experiments._RunProgress(total=3, done=1)
    progress.finished(build_config("smoke", "tpavi"))
    assert "[runs] 2/3 done (tpavi seed 0)" in capsys.readouterr().out


def test_time_left_weighs_the_runs_by_their_estimate_not_their_count(capsys, monkeypatch):
    """The grid starts its longest runs first: after the first of three runs, a count said twice
    the time taken was left even when the two left were short (a cpu report once said 107 min)."""
    clock = iter([0.0, 60.0, 80.0])
    monkeypatch.setattr(experiments.time, "perf_counter", lambda: next(clock))
    expected = {("thesis", 0): 60.0, ("tpavi", 0): 12.0, ("tpavi", 1): 12.0}
    progress = experiments._RunProgress(total=3, done=0, expected=expected)
    progress.finished(build_config("smoke", "thesis"))
    assert "60 s so far, about 24 s left" in capsys.readouterr().out  # not 120 s: 2 runs x 60 s
    progress.finished(build_config("smoke", "tpavi"))
    assert "about 13 s left" in capsys.readouterr().out  # 80 s x 12 / 72


def test_the_estimate_gives_each_runs_seconds_for_the_time_left():
    cfgs = _cfgs([("tpavi", 0), ("thesis", 0)])
    estimate = experiments.estimate_grid_seconds(cfgs, lambda cfg: experiments.RunCost(1.0),
                                                 lambda cfg: experiments.RunWork(10), jobs=2)
    assert estimate.run_seconds == {("tpavi", 0): pytest.approx(10.0), ("thesis", 0): pytest.approx(10.0)}


# ---------------------------------------------------------------- papermill as users call it


@pytest.mark.parametrize("path", notebooks.notebook_paths(), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_with_its_one_line_help(path):
    """papermill's parser skips a line with a second "=" (in its comment, say) without failing:
    such a parameter would then be dropped from `papermill --help-notebook` and from the report."""
    import papermill

    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    declared = [line.split("=")[0].strip() for line in cell.source.splitlines() if line.strip()]
    parsed = papermill.inspect_notebook(str(path))
    assert list(parsed) == declared
    assert [name for name, p in parsed.items() if not p["help"]] == []


@pytest.mark.timeout(600)
def test_the_readme_papermill_example_runs_as_written_from_the_repository_root(tmp_path):
    """In a copy of the root's notebooks/ (so nothing is written into the checkout)."""
    shutil.copytree(NOTEBOOK_DIR, tmp_path / "notebooks")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_DIR),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-ec", PAPERMILL_EXAMPLE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(tmp_path / "reports" / "smoke" / "01_data_inspection.ipynb", as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert list((tmp_path / "reports" / "smoke" / "figures").glob("data_*.png"))


def test_the_report_log_shows_each_warning_once_across_notebooks():
    """Each kernel prints "no pretrained weights given" anew; the report's log shows it once, with
    its source line, and keeps every other line (#29: 13 such warnings in a 68-line log)."""
    import io

    warning = ("/repo/avs_lib/models/build.py:34: UserWarning: no pretrained weights given; using random "
               "initialisation (ResNet of AVSModel)\n  load_imagenet_resnet(model, cfg.resnet_weights)\n")
    other = "/repo/avs_lib/models/build.py:50: UserWarning: no pretrained weights given (VGGish)\n  return x\n"
    out = io.StringIO()
    log = notebooks.WarningsOnce(out)
    for chunk in ("[report] 03_training: started\n", warning, other, warning, "total: 3 runs\n", warning + other,
                  "Warning: a sentence a notebook prints\n", "Warning: a sentence a notebook prints\n"):
        log.write(chunk)
    assert out.getvalue() == ("[report] 03_training: started\n" + warning + other + "total: 3 runs\n"
                              + "Warning: a sentence a notebook prints\n" * 2)
