"""The README's results table is the committed report's results.csv, cell for cell."""

from __future__ import annotations

from pathlib import Path

from avs_lib.report.results import check_readme_table

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_table_agrees_with_the_committed_results_csv():
    check_readme_table(REPO / "README.md", REPO / "figures" / "results.csv")
