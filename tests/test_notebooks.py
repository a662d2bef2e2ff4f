"""The report's notebooks: they declare their parameters, keep cells short, and run end to end.

The end-to-end tests execute all six notebooks once with papermill on the `smoke` profile
(data, runs and figures in a temporary folder): about two minutes on two CPU cores.
"""

import nbformat
import pytest

from avs_lib.report.notebooks import notebook_paths, run_notebooks

PARAMETERS = ("PROFILE", "DATA_ROOT", "RUNS_DIR", "DEVICE", "SEEDS", "METHODS", "FIGURES_DIR",
              "RESNET_WEIGHTS", "VGGISH_WEIGHTS")
OWN_PARAMETERS = {"01_data_inspection": ("OVERRIDES",), "02_crop_label_review": ("OVERRIDES",), "03_training": ("JOBS", "OVERRIDES", "KEEP_STALE"),
                  "06_defence": ("OVERRIDES",)}  # own, besides the shared ones
# Every notebook saves figures under names with its own prefix.
FIGURE_PREFIXES = {"01_data_inspection": "data_", "02_crop_label_review": "crops_", "03_training": "training_",
                   "04_evaluation": "results_", "05_failure_cases": "failures_", "06_defence": "defence_"}


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_the_six_numbered_notebooks_exist():
    assert [p.stem for p in notebook_paths()] == list(FIGURE_PREFIXES)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_first_code_cell_is_the_parameters_cell(path):
    first = _code_cells(path)[0]
    assert first.metadata.get("tags") == ["parameters"]
    declared = [line.split("=")[0].strip() for line in first.source.splitlines()]
    own = OWN_PARAMETERS.get(path.stem, ())
    assert tuple(d for d in declared if d not in own) == PARAMETERS and set(own) <= set(declared)


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long_cells = [c.source for c in _code_cells(path) if len(c.source.splitlines()) >= 15]
    assert long_cells == []


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """All notebooks run once on the smoke profile; returns the folder of everything they wrote."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        # The kernel inherits this; two threads on two shared cores slow training twentyfold.
        patch.setenv("OMP_NUM_THREADS", "1")
        run_notebooks(profile="smoke", data_root=str(root / "data" / "synth"), runs_dir=str(root / "runs"),
                      device="cpu", output_dir=root / "executed",
                      extra_parameters={"FIGURES_DIR": str(root / "figures")})
    return root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_notebook_runs_and_saves_its_figures(executed):
    assert sorted(p.stem for p in (executed / "executed").glob("*.ipynb")) == list(FIGURE_PREFIXES)
    figures = [p.name for p in (executed / "figures").glob("*.png")]
    for notebook, prefix in FIGURE_PREFIXES.items():
        assert any(name.startswith(prefix) for name in figures), f"{notebook} saved no {prefix}*.png"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_runs_and_the_crop_label_review_land_in_the_profile_folder(executed):
    smoke = executed / "runs" / "smoke"
    (data_folder,) = smoke.glob("s4-*")  # runs are keyed by dataset and data root (report.runs.data_key)
    assert sorted(p.parent.name for p in data_folder.glob("*/summary.json")) == [
        "counterfactual_seed0", "thesis_seed0", "tpavi_seed0", "visual_only_seed0"]
    assert (data_folder / "crop_label_review.csv").is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_evaluation_verdicts_claim_nothing_from_one_seed(executed):
    cells = _code_cells(executed / "executed" / "04_evaluation.ipynb")
    verdict_cell = next(c for c in cells if c.source.startswith("verdicts = "))
    text = "".join(o.get("data", {}).get("text/markdown", "") for o in verdict_cell.outputs)
    assert "one seed, so no interval and no verdict" in text
    assert "**higher**" not in text and "**lower**" not in text


def _cells_without_injected_parameters(path):
    cells = nbformat.read(path, as_version=4).cells
    return [(c.cell_type, c.source) for c in cells if "injected-parameters" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_nbval_reference_has_the_same_cells_as_the_report_notebook(path):
    """`make test` reruns notebooks/smoke/ with nbval; a report notebook changed without
    `make smoke-notebooks` would leave CI checking old code."""
    smoke = path.parent / "smoke" / path.name
    assert smoke.is_file(), f"{smoke} missing: run `make smoke-notebooks`"
    assert _cells_without_injected_parameters(smoke) == _cells_without_injected_parameters(path), (
        f"{smoke} differs from {path}: run `make smoke-notebooks`")
    injected = [c for c in nbformat.read(smoke, as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'PROFILE = "smoke"' in injected[0].source


def test_run_notebooks_expresses_paths_from_the_output_folder(tmp_path, monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, out, parameters, cwd, **kw: calls.append((parameters, cwd)))
    out = tmp_path / "nb" / "smoke"
    run_notebooks(profile="smoke", data_root=str(tmp_path / "data" / "synth"), runs_dir=str(tmp_path / "runs"),
                  notebooks=["01_data_inspection"], output_dir=out,
                  extra_parameters={"FIGURES_DIR": str(tmp_path / "figs"), "SEEDS": [0]})
    (parameters, cwd), = calls
    assert cwd == str(out.resolve())
    assert parameters["DATA_ROOT"] == "../../data/synth" and parameters["RUNS_DIR"] == "../../runs"
    assert parameters["FIGURES_DIR"] == "../../figs" and parameters["SEEDS"] == [0]
