"""tools/verify_report.py: a retrained run is compared with the committed results.csv rows."""

import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import verify_report  # noqa: E402


def _committed() -> pd.DataFrame:
    rows = [("tpavi", 0, split, metric, 0.5) for split, metric in verify_report.COMPARED]
    return pd.DataFrame(rows, columns=["method", "seed", "split", "metric", "value"])


def _fresh(**changed) -> pd.DataFrame:
    row = {"method": "tpavi", "seed": 0, **{key: 0.5 for key in verify_report.COMPARED.values()}, **changed}
    return pd.DataFrame([row])


def test_the_same_numbers_are_identical_and_within():
    table = verify_report.compare(_fresh(), _committed())
    assert table["identical"].all() and table["within"].all() and len(table) == len(verify_report.COMPARED)


def test_a_number_beyond_its_tolerance_is_flagged_and_one_within_is_not():
    tol = verify_report.TOLERANCE["test_miou"]
    table = verify_report.compare(_fresh(test_miou=0.5 + 2 * tol, test_listening_rate=0.51), _committed())
    flagged = set(table.loc[~table["within"], "metric"])
    assert flagged == {"test_miou"}
    assert not table.set_index("metric").loc["test_listening_rate", "identical"]


def test_a_run_missing_from_the_committed_results_is_an_error():
    with pytest.raises(KeyError, match="thesis seed 0"):
        verify_report.compare(_fresh(method="thesis"), _committed())


def test_make_verify_report_passes_arguments_the_tool_accepts():
    """`make verify-report` once called the tool with a --runs flag it does not have."""
    root = Path(__file__).resolve().parents[1]
    dry = subprocess.run(["make", "-n", "--no-print-directory", "verify-report"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    line = next(line for line in dry.splitlines() if "tools/verify_report.py" in line)
    argv = shlex.split(line)
    args = verify_report.build_parser().parse_args(argv[argv.index("tools/verify_report.py") + 1:])
    assert args.methods == ["tpavi", "thesis"] and args.seeds == [0]
