"""The README's results table is the committed report's results.csv, cell for cell.

Reading the README is the test's business, not the library's: the library renders the table
(`report.results.results_markdown`); this module finds it in the README and compares.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from avs_lib.report.experiments import RESULT_HEADERS
from avs_lib.report.results import read_results, results_long, results_markdown

REPO = Path(__file__).resolve().parents[1]
TABLE_FIRST_HEADERS = ("method", "seeds")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in a markdown text, as rows of stripped cell strings (the `|---|` line
    dropped)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            cells = [c.strip() for c in stripped[1:-1].split("|")]
            if not all(set(c) <= set("-: ") and c for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def readme_results_table(text: str) -> list[list[str]]:
    """The results table of a README: the one pipe table whose header starts "method | seeds"."""
    found = [t for t in markdown_tables(text) if tuple(t[0][:2]) == TABLE_FIRST_HEADERS]
    if len(found) != 1:
        raise ValueError(f"expected one results table (a header starting | method | seeds |) in the "
                         f"README, found {len(found)}")
    return found[0]


def table_disagreements(readme_text: str, long: pd.DataFrame) -> list[str]:
    """Where the README's results table and results.csv differ, one line each (empty: they agree).

    The README's own methods and columns are rendered from the file and compared cell by cell.
    """
    readme = readme_results_table(readme_text)
    header, rows = readme[0], readme[1:]
    methods = [r[0] for r in rows]
    have = set(long["method"])
    problems = [f"README method {m!r} has no runs in results.csv" for m in methods if m not in have]
    if problems:
        return problems
    rendered = readme_results_table(results_markdown(long, methods=methods))
    if header != rendered[0]:
        return [f"README header {header} differs from the rendered header {rendered[0]}"]
    for mine, theirs in zip(rows, rendered[1:], strict=True):
        for column, a, b in zip(header[1:], mine[1:], theirs[1:], strict=True):
            if a != b:
                problems.append(f"{mine[0]}, {column}: README says {a!r}, results.csv gives {b!r}")
    return problems


def test_the_readme_table_agrees_with_the_committed_results_csv():
    problems = table_disagreements((REPO / "README.md").read_text(), read_results(REPO / "figures" / "results.csv"))
    assert not problems, "README.md and figures/results.csv disagree:\n" + "\n".join(problems)


# ---------------------------------------------------------------- the check itself, on tiny inputs


def _long() -> pd.DataFrame:
    """results.csv's rows of two tpavi seeds and one thesis seed, with every column of the table."""
    runs = pd.DataFrame({"method": ["tpavi", "tpavi", "thesis"], "seed": [0, 1, 0],
                         "test_f_score_batch_size": [4, 4, 4]})
    for metric in RESULT_HEADERS:
        runs[metric] = [0.4, 0.5, 0.45] if metric == "test_miou" else [0.6, 0.6, 0.6]
    return results_long(runs)


def _readme(table: str) -> str:
    return f"# Project\n\nSome text.\n\n{table}\n\n![a figure](figures/x.png)\n"


def test_a_readme_rendered_from_the_csv_agrees_with_it():
    assert table_disagreements(_readme(results_markdown(_long())), _long()) == []


def test_a_changed_number_is_named_with_its_method_and_column():
    table = results_markdown(_long()).replace("0.450 ± 0.071", "0.460 ± 0.071")
    assert table_disagreements(_readme(table), _long()) == [
        "tpavi, mIoU: README says '0.460 ± 0.071', results.csv gives '0.450 ± 0.071'"]


def test_a_readme_method_without_runs_is_named():
    table = results_markdown(_long()) + "\n| cross_attention | 1 | 0.1 | 0.1 | 0.1 | 0.1 | 0.1 | 0.1 | 0.1 |"
    assert table_disagreements(_readme(table), _long()) == ["README method 'cross_attention' has no runs in results.csv"]


def test_a_readme_without_a_results_table_is_an_error():
    with pytest.raises(ValueError, match="expected one results table"):
        table_disagreements("# Nothing here\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", _long())


# ---------------------------------------------------------------- the answer, as notebook 04 wrote it

ANSWER_FILE = REPO / "figures" / "answer.md"


def marked_block(text: str, name: str) -> str:
    """The text between `<!-- name -->` and `<!-- /name -->` (stripped); an error when not exactly one."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"expected one {start} ... {end} block, found {text.count(start)} / {text.count(end)}")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def answer_sections(answer: str) -> dict[str, str]:
    """answer.md's "## Answer" (English) and "## 답" (Korean) lists, keyed "answer" and "answer-ko"."""
    english, korean = answer.split("## 답", 1)
    return {"answer": english.split("## Answer", 1)[1].strip(), "answer-ko": korean.strip()}


@pytest.mark.parametrize("name", ["answer", "answer-ko"])
def test_the_readme_answer_is_the_one_notebook_04_computed(name):
    readme = (REPO / "README.md").read_text()
    assert marked_block(readme, name) == answer_sections(ANSWER_FILE.read_text())[name], (
        f"README.md's {name} block differs from figures/answer.md (written by notebook 04): copy it over")


def test_the_answer_has_at_most_eight_sentences():
    english = answer_sections(ANSWER_FILE.read_text())["answer"]
    # a sentence ends with a full stop before a space/newline or the end, not inside a number
    sentences = [s for s in english.replace("\n- ", " ").split(". ") if s.strip()]
    assert len(sentences) <= 8, sentences


def test_a_changed_answer_is_caught():
    answer = "## Answer\n\n- It helps.\n\n## 답\n\n- 도움이 된다.\n"
    readme = "x\n<!-- answer -->\n- It hurts.\n<!-- /answer -->\n"
    assert marked_block(readme, "answer") != answer_sections(answer)["answer"]
    with pytest.raises(ValueError, match="expected one"):
        marked_block("no block", "answer")


def test_the_readme_names_every_shifted_split_the_report_evaluates():
    from avs_lib.datatools.synth import shifted_test_name
    from avs_lib.report.shifted import SHIFTS
    readme = (REPO / "README.md").read_text()
    missing = [shifted_test_name(s) for s in SHIFTS if f"`{shifted_test_name(s)}`" not in readme]
    assert not missing, f"README.md does not describe the shifted split(s) {missing} that notebook 04 evaluates"


def test_the_readme_describes_the_companion_benchmarks_as_the_config_makes_them():
    from avs_lib.datatools.profiles import get_profile
    from avs_lib.report.grids import COMPANIONS, GRIDS
    text = " ".join((REPO / "README.md").read_text().split())  # line breaks are spaces
    for name in COMPANIONS["cpu"]:
        assert f"`{name}`" in text and f"`{name}_*`" in text
    looks, noisy = get_profile("cpu_multilook").synthetic, get_profile("cpu_noisy").synthetic
    assert looks.shared_colours and f"one of {looks.looks_per_class} looks of its class" in text
    low, high = noisy.snr_db_range
    assert f"{low:g}–{high:g} dB" in text
    for method in GRIDS["cpu"].longer:
        assert f"`{method}`" in text
    assert f"({len(GRIDS['cpu'].ablation_seeds)} seeds) train twice the" in text
