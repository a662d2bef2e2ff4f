"""One PNG per slide of the defence deck, taken in headless Chromium with the network cut off, so the
pictures also show that the deck needs none (`make slides-screenshots`; figures/slides/ is committed).

    python tools/slide_screenshots.py --deck reports/slides/defence.slides.html --out figures/slides

Needs Debian's Chromium and the `playwright` package (`make browser-deps`), as the mask-browser
screenshots do (tools/jupyter_browser.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from jupyter_browser import CHROMIUM, CHROMIUM_ARGS, missing_requirements

VIEWPORT = {"width": 1280, "height": 720}  # the deck's own size (avs_lib.report.slides): a slide fills it
SETTLE_MS = 300  # after moving to a slide, before the picture (the deck has no transitions)


def slide_screenshots(deck: str | Path, out: str | Path) -> list[Path]:
    """Open `deck` from disk, refuse every request that is not a local file, and write
    `out/slide_NN.png` for each slide (older slide PNGs there are removed first).

    Raises RuntimeError when the page asked for anything off the machine, or has no slides.
    """
    from playwright.sync_api import sync_playwright

    deck, out = Path(deck).resolve(), Path(out)
    if not deck.is_file():
        raise FileNotFoundError(f"deck not found: {deck} (make slides writes it)")
    outside: list[str] = []
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else (outside.append(route.request.url), route.abort()))
            page.goto(deck.as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=30_000)
            total = page.evaluate("Reveal.getTotalSlides()")
            if outside or not total:
                raise RuntimeError(f"{deck}: requests off the machine {outside}, {total} slides")
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob("slide_*.png"):
                old.unlink()
            for index in range(total):
                page.evaluate(f"Reveal.slide({index})")
                page.wait_for_timeout(SETTLE_MS)
                written.append(out / f"slide_{index + 1:02d}.png")
                page.screenshot(path=str(written[-1]))
        finally:
            browser.close()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deck", default="reports/slides/defence.slides.html")
    parser.add_argument("--out", default="figures/slides")
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"error: not installed: {', '.join(missing)} (make browser-deps)", file=sys.stderr)
        return 2
    try:
        for path in slide_screenshots(args.deck, args.out):
            print(path)
    except (FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
