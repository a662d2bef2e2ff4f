"""The report for readers without Jupyter, by nbconvert: an HTML page per executed notebook and the
defence deck (`make slides`), a reveal.js page of the executed notebooks/06_defence.ipynb.

The deck follows Jupyter's slide metadata (`slideshow.slide_type`), shows markdown and saved
outputs only (papermill's parameters cells removed by tag), and works offline: reveal.js comes
from the pinned `sphinx-revealjs` package, and templates/defence/ is nbconvert's reveal template
without its CDN scripts.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import nbformat

from avs_lib.atomic import write_text_atomically

TEMPLATES = Path(__file__).resolve().parent / "templates"
REVEAL_FOLDER = "reveal.js"  # beside the deck, where its <script> tags point
REMOVED_TAGS = {"parameters", "injected-parameters"}  # papermill's cells: not for an audience


def build_slides(notebook_path: str | Path, out_path: str | Path) -> Path:
    """Write the deck of an executed notebook to `out_path`, reveal.js copied beside it."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    notebook_path, out_path = Path(notebook_path), Path(out_path)
    if not notebook_path.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook_path}")
    config = Config(TagRemovePreprocessor={"enabled": True, "remove_cell_tags": REMOVED_TAGS})
    exporter = SlidesExporter(config=config, template_name="defence", extra_template_basedirs=[str(TEMPLATES)],
                              exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                              reveal_url_prefix=REVEAL_FOLDER, reveal_theme="white", reveal_transition="none",
                              reveal_number="c/t", reveal_width="1280", reveal_height="720")
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4),
                                          resources={"metadata": {"name": out_path.stem}})
    write_text_atomically(out_path, body)
    try:
        import sphinx_revealjs  # ships reveal.js
    except ImportError as error:
        raise FileNotFoundError("reveal.js comes from the sphinx-revealjs package: `make install` "
                                "(requirements.lock) or pip install sphinx-revealjs") from error
    reveal = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
    for part in ("dist", "plugin/notes"):
        shutil.copytree(reveal / part, out_path.parent / REVEAL_FOLDER / part, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.map", "*.esm.js"))
    return out_path


def export_html(notebook_paths: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Each executed notebook as `out_dir/{stem}.html` (outputs as saved; nothing is run)."""
    from nbconvert import HTMLExporter

    if not notebook_paths:
        raise ValueError("export_html: expected at least one notebook")
    exporter = HTMLExporter()
    written = []
    for path in map(Path, notebook_paths):
        if not path.is_file():
            raise FileNotFoundError(f"notebook not found: {path}")
        body, _ = exporter.from_filename(str(path), resources={"metadata": {"name": path.stem}})
        written.append(Path(out_dir) / f"{path.stem}.html")
        write_text_atomically(written[-1], body)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m avs_lib.report.slides NOTEBOOK --out DECK.html` (`make slides`)."""
    parser = argparse.ArgumentParser(prog="python -m avs_lib.report.slides", description=__doc__.split("\n")[0])
    parser.add_argument("notebook", help="the executed deck notebook (notebooks/06_defence.ipynb)")
    parser.add_argument("--out", required=True, help="the deck's .html file; reveal.js/ is written beside it")
    args = parser.parse_args(argv)
    try:
        print(build_slides(args.notebook, args.out))
    except FileNotFoundError as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
