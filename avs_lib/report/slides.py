"""The report for readers without Jupyter: HTML pages of the executed notebooks (`make html`) and a
short reveal.js deck for a defence built from tagged cells (`make slides`).

A cell goes into the deck when its tags include `slides`. Each such cell opens a new slide, unless
it also has `slides-continue`, which puts it on the slide before it (a table and the sentence
under it, say). The deck follows the notebooks' order, then the cells' order. Code inputs are
left out: a slide shows the markdown and the outputs (tables, figures, computed sentences), as
saved in the executed notebooks; nothing is run.

nbconvert's slides template links reveal.js from a CDN (its `reveal_url_prefix`); nothing is
downloaded when the deck is built, and the browser that shows it fetches reveal.js.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from avs_lib.atomic import write_text_atomically

SLIDE_TAG = "slides"
CONTINUE_TAG = "slides-continue"
DECK_NAME = "defence"


def read_notebook(path: str | Path) -> NotebookNode:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook not found: {path}")
    return nbformat.read(path, as_version=4)


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def select_slide_cells(notebooks: Sequence[NotebookNode], tag: str = SLIDE_TAG,
                       continue_tag: str = CONTINUE_TAG) -> NotebookNode:
    """A new notebook of the cells tagged `tag`, in order, each marked as a reveal.js slide
    (`slide`), or as part of the previous slide (`-`) when it also carries `continue_tag`.

    The notebooks are not changed; the first one's metadata (kernel, language) is kept.
    """
    if not notebooks:
        raise ValueError("select_slide_cells: expected at least one notebook")
    cells = []
    for notebook in notebooks:
        for cell in notebook.cells:
            tags = _tags(cell)
            if tag not in tags:
                continue
            chosen = copy.deepcopy(cell)
            slide_type = "-" if continue_tag in tags and cells else "slide"
            chosen.metadata["slideshow"] = {"slide_type": slide_type}
            cells.append(chosen)
    if not cells:
        raise ValueError(f"no cell is tagged {tag!r} in the {len(notebooks)} notebook(s): tag the cells "
                         "of the deck (question, method, headline table, listening figure, verdict)")
    deck = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(notebooks[0].metadata))
    return deck


def build_slides(notebook_paths: Sequence[str | Path], out_path: str | Path,
                 tag: str = SLIDE_TAG) -> Path:
    """Write the reveal.js deck of the cells tagged `tag` in `notebook_paths` to `out_path`
    (HTML, atomically) and return its path."""
    from nbconvert import SlidesExporter

    deck = select_slide_cells([read_notebook(p) for p in notebook_paths], tag)
    exporter = SlidesExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(deck, resources={"metadata": {"name": Path(out_path).stem}})
    out_path = Path(out_path)
    write_text_atomically(out_path, body)
    return out_path


def export_html(notebook_paths: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Each executed notebook as a standalone HTML page `out_dir/{stem}.html` (outputs as saved;
    nothing is run); returns the paths in the given order."""
    from nbconvert import HTMLExporter

    if not notebook_paths:
        raise ValueError("export_html: expected at least one notebook")
    exporter = HTMLExporter()
    written = []
    for path in notebook_paths:
        notebook = read_notebook(path)
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": Path(path).stem}})
        target = Path(out_dir) / f"{Path(path).stem}.html"
        write_text_atomically(target, body)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m avs_lib.report.slides html|slides --out PATH NOTEBOOK...` (the Makefile's targets)."""
    parser = argparse.ArgumentParser(prog="python -m avs_lib.report.slides", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("html", "slides"))
    parser.add_argument("notebooks", nargs="+", help="executed notebooks, in reading order")
    parser.add_argument("--out", required=True, help="html: a folder; slides: the deck's .html file")
    parser.add_argument("--tag", default=SLIDE_TAG, help="slides: the tag of the deck's cells")
    args = parser.parse_args(argv)
    try:
        if args.what == "html":
            for path in export_html(args.notebooks, args.out):
                print(path)
        else:
            print(build_slides(args.notebooks, args.out, args.tag))
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()


__all__ = ["CONTINUE_TAG", "SLIDE_TAG", "build_slides", "export_html", "main", "select_slide_cells"]
