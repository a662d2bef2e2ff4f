"""`make slides` and the runner's HTML pages: the deck is nbconvert's reveal.js export of the deck
notebook, built from its cells' slide types, and opens with no network."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from avs_lib.report import slides
from avs_lib.report.notebooks import NOTEBOOK_DIR

REPO = Path(__file__).resolve().parents[1]
DECK_NOTEBOOKS = [NOTEBOOK_DIR / "06_defence.ipynb", NOTEBOOK_DIR / "smoke" / "06_defence.ipynb"]
SCREENSHOTS = REPO / "figures" / "slides"
OFF_THE_MACHINE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|import[^;]*from\s*["']https?:|unpkg|cdnjs|jsdelivr""")


def _cell(kind: str, source: str, slide_type: str | None = None, tags: tuple[str, ...] = (), printed: str = ""):
    metadata = {"tags": list(tags)}
    if slide_type is not None:
        metadata["slideshow"] = {"slide_type": slide_type}
    if kind == "markdown":
        return nbformat.v4.new_markdown_cell(source, metadata=metadata)
    cell = nbformat.v4.new_code_cell(source, metadata=metadata)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)] if printed else []
    return cell


def _deck_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[
        _cell("markdown", "not in the deck", "skip"),
        _cell("code", 'PROFILE = "smoke"', "skip", ("parameters",)),
        _cell("code", 'PROFILE = "cpu"', None, ("injected-parameters",), printed="INJECTED\n"),
        _cell("code", "print('headline')", "slide", printed="THE HEADLINE\n"),
        _cell("markdown", "what the headline rests on", "-"),
        _cell("code", "print('verdict')", "slide", printed="THE VERDICT\n"),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def slide_bodies(html: str) -> list[str]:
    """The HTML of each top-level slide (nbconvert writes each as <section><section>...)."""
    return html.split("<section><section>")[1:]


def test_each_slide_type_slide_opens_a_slide_and_dash_joins_the_one_before(tmp_path):
    html = slides.build_slides(_deck_notebook(tmp_path / "06_deck.ipynb"), tmp_path / "deck.html").read_text()
    bodies = slide_bodies(html)
    assert len(bodies) == 2
    assert "THE HEADLINE" in bodies[0] and "what the headline rests on" in bodies[0] and "THE VERDICT" in bodies[1]


def test_deck_leaves_out_skipped_cells_the_parameters_cells_and_all_code(tmp_path):
    html = slides.build_slides(_deck_notebook(tmp_path / "06_deck.ipynb"), tmp_path / "deck.html").read_text()
    assert "not in the deck" not in html and "INJECTED" not in html and "PROFILE" not in html
    assert "print(&#39;headline&#39;)" not in html and "print('headline')" not in html


def test_deck_loads_reveal_js_from_the_copy_beside_it_and_nothing_from_the_network(tmp_path):
    deck = slides.build_slides(_deck_notebook(tmp_path / "06_deck.ipynb"), tmp_path / "out" / "deck.html")
    html = deck.read_text()
    assert OFF_THE_MACHINE.findall(html) == []
    for part in ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "plugin/notes/notes.js"):
        assert (deck.parent / slides.REVEAL_FOLDER / part).is_file(), part
    assert f'src="{slides.REVEAL_FOLDER}/dist/reveal.js"' in html


def test_slides_build_needs_no_network(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access during the slide build")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert "THE VERDICT" in slides.build_slides(_deck_notebook(tmp_path / "06.ipynb"), tmp_path / "d.html").read_text()


def test_command_line_reports_a_missing_notebook_as_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        slides.main([str(tmp_path / "06_missing.ipynb"), "--out", str(tmp_path / "deck.html")])
    assert stopped.value.code == 2 and "06_missing.ipynb" in capsys.readouterr().err


def test_html_export_writes_one_page_per_notebook(tmp_path):
    first = _deck_notebook(tmp_path / "01_part.ipynb")
    pages = slides.export_html([first], tmp_path / "html")
    assert pages == [tmp_path / "html" / "01_part.html"]
    assert "not in the deck" in pages[0].read_text()  # a page shows every cell


# ---------------------------------------------------------------- the committed deck


@pytest.mark.parametrize("notebook", [p for p in DECK_NOTEBOOKS if p.is_file()], ids=lambda p: p.parent.name)
def test_committed_deck_has_10_to_14_slides_and_none_is_empty(notebook, tmp_path):
    cells = nbformat.read(notebook, as_version=4).cells
    assert [o.get("evalue") for c in cells for o in c.get("outputs", []) if o.output_type == "error"] == []
    html = slides.build_slides(notebook, tmp_path / "defence.slides.html").read_text()
    bodies = slide_bodies(html)
    assert 10 <= len(bodies) <= 14
    empty = [i + 1 for i, body in enumerate(bodies) if not (re.sub(r"<[^>]+>|\s", "", body) or "<img" in body)]
    assert empty == []
    assert OFF_THE_MACHINE.findall(html) == []


def test_committed_slide_screenshots_are_one_per_slide_of_the_committed_deck(tmp_path):
    html = slides.build_slides(DECK_NOTEBOOKS[0], tmp_path / "defence.slides.html").read_text()
    shots = sorted(SCREENSHOTS.glob("slide_*.png"))
    assert [p.name for p in shots] == [f"slide_{i + 1:02d}.png" for i in range(len(slide_bodies(html)))]
    assert all(Image.open(p).width <= 2400 for p in shots)


# ---------------------------------------------------------------- in a browser


def _screenshot_tool():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import jupyter_browser
        import slide_screenshots
    finally:
        sys.path.remove(str(REPO / "tools"))
    if jupyter_browser.missing_requirements():
        pytest.skip(f"not installed: {jupyter_browser.missing_requirements()} (make browser-deps)")
    return slide_screenshots


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_screenshots_show_every_slide_of_a_deck_opened_offline(tmp_path):
    tool = _screenshot_tool()
    deck = slides.build_slides(_deck_notebook(tmp_path / "06.ipynb"), tmp_path / "deck" / "deck.html")
    shots = tool.slide_screenshots(deck, tmp_path / "shots")
    assert [p.name for p in shots] == ["slide_01.png", "slide_02.png"]
    assert all(Image.open(p).size == (1280, 720) for p in shots)


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_screenshots_refuse_a_deck_that_asks_the_network_for_anything(tmp_path):
    tool = _screenshot_tool()
    deck = slides.build_slides(_deck_notebook(tmp_path / "06.ipynb"), tmp_path / "deck" / "deck.html")
    deck.write_text(deck.read_text().replace("</head>", '<script src="https://unpkg.com/x.js"></script></head>'))
    with pytest.raises(RuntimeError, match="unpkg.com"):
        tool.slide_screenshots(deck, tmp_path / "shots")
