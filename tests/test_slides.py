"""`make html` and `make slides`: the selection of a deck's cells and the two exports, on a tiny notebook."""

import nbformat
import pytest

from avs_lib.report import slides


def _notebook(*cells) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=list(cells))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def _markdown(text: str, *tags: str):
    return nbformat.v4.new_markdown_cell(text, metadata={"tags": list(tags)})


def _code(source: str, printed: str, *tags: str):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    return cell


def _two_notebooks():
    first = _notebook(_markdown("# The question", "slides"), _markdown("not in the deck"),
                      _code("print('table')", "HEADLINE TABLE\n", "slides"))
    second = _notebook(_code("print('verdict')", "THE VERDICT\n", "slides"),
                       _markdown("what the verdict rests on", "slides", "slides-continue"))
    return first, second


def test_deck_holds_only_the_tagged_cells_in_notebook_order():
    deck = slides.select_slide_cells(_two_notebooks())
    assert [c.source for c in deck.cells] == ["# The question", "print('table')", "print('verdict')",
                                              "what the verdict rests on"]


def test_each_tagged_cell_opens_a_slide_unless_it_continues_the_previous_one():
    deck = slides.select_slide_cells(_two_notebooks())
    assert [c.metadata["slideshow"]["slide_type"] for c in deck.cells] == ["slide", "slide", "slide", "-"]


def test_selection_leaves_the_notebooks_unchanged():
    notebooks = _two_notebooks()
    slides.select_slide_cells(notebooks)
    assert all("slideshow" not in c.metadata for nb in notebooks for c in nb.cells)


def test_no_tagged_cell_is_an_error_naming_the_tag():
    with pytest.raises(ValueError, match="no cell is tagged 'slides'"):
        slides.select_slide_cells([_notebook(_markdown("untagged"))])


def test_slides_export_is_a_reveal_deck_of_the_outputs_without_the_code(tmp_path):
    paths = []
    for i, notebook in enumerate(_two_notebooks()):
        paths.append(tmp_path / f"0{i + 1}_part.ipynb")
        nbformat.write(notebook, paths[-1])
    deck = slides.build_slides(paths, tmp_path / "out" / "defence.slides.html")
    html = deck.read_text()
    assert "reveal" in html.lower() and "HEADLINE TABLE" in html and "THE VERDICT" in html
    assert "print(&#39;table&#39;)" not in html and "print('table')" not in html
    assert "not in the deck" not in html


def test_html_export_writes_one_page_per_notebook(tmp_path):
    paths = []
    for i, notebook in enumerate(_two_notebooks()):
        paths.append(tmp_path / f"0{i + 1}_part.ipynb")
        nbformat.write(notebook, paths[-1])
    pages = slides.export_html(paths, tmp_path / "html")
    assert pages == [tmp_path / "html" / "01_part.html", tmp_path / "html" / "02_part.html"]
    assert "not in the deck" in pages[0].read_text() and "THE VERDICT" in pages[1].read_text()


def test_command_line_reports_a_deck_without_tagged_cells_as_a_message(tmp_path, capsys):
    path = tmp_path / "01_untagged.ipynb"
    nbformat.write(_notebook(_markdown("untagged")), path)
    with pytest.raises(SystemExit) as stopped:
        slides.main(["slides", "--out", str(tmp_path / "deck.html"), str(path)])
    assert stopped.value.code == 2 and "no cell is tagged 'slides'" in capsys.readouterr().err


def test_slides_build_needs_no_network(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access during the slide build")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    path = tmp_path / "04_part.ipynb"
    nbformat.write(_two_notebooks()[0], path)
    html = slides.build_slides([path], tmp_path / "deck.html").read_text()
    assert "https://unpkg.com/reveal.js" in html  # linked for the browser, not fetched here
