"""Drive a notebook cell in a real JupyterLab from headless Chromium: start the server, open the
notebook, run its cell, wait for the widget, act on it and take screenshots.

Shared by the browser test (tests/test_browser.py, over a fake predictor) and the README's
screenshot script (tools/browser_screenshots.py, over the report's trained runs). It lives outside
the avs_lib package so that the library never depends on Playwright or a browser. Needs Debian's
Chromium (/usr/bin/chromium) and the `playwright` package (`make browser-deps` installs both);
`playwright install` is never run, it would download a browser of its own.

Every wait has a deadline and fails with a `BrowserError` that says what was awaited and what the
page showed instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_S = 180  # JupyterLab on a loaded 2-core machine can take 30+ s
KERNEL_RUN_S = 180  # the cell imports torch and reads the clips
ACTION_S = 60
RESEND_AFTER_S = 20
VIEWPORT = {"width": 1280, "height": 1900}


class BrowserError(RuntimeError):
    """A wait in the browser ran out, or the page showed an error."""


def missing_requirements() -> list[str]:
    """What is not installed of what the browser needs (empty when everything is)."""
    missing = [] if CHROMIUM.is_file() else [f"{CHROMIUM} (Debian's chromium package)"]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    return missing


# ---------------------------------------------------------------- the server


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: where it answers and the token it wants."""

    base: str
    token: str

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"


def write_notebook(path: Path, code: str) -> None:
    """A notebook of one code cell, for the python3 kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


def isolated_jupyter_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Config, data and runtime folders of our own, so nothing from the user's Jupyter set-up
    (kernels, workspaces, settings) reaches the page; the news pop-up is switched off."""
    env = dict(os.environ) | (extra or {})
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = home / name.lower()
        folder.mkdir(parents=True)
        env[name] = str(folder)
    env.pop("JUPYTER_PATH", None)
    labconfig = home / "jupyter_config_dir" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_answers(lab: Lab) -> bool:
    try:
        with urllib.request.urlopen(lab.url("api/status"), timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen, lab: Lab) -> None:
    """Shut the kernels down through the server, then end the server's process group; whatever
    it started outside its group (kernels run in their own session) is ended by id."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        with urllib.request.urlopen(lab.url("api/kernels"), timeout=5) as response:
            kernels = json.load(response)
        for kernel in kernels:
            request = urllib.request.Request(lab.url(f"api/kernels/{kernel['id']}"), method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
    except (urllib.error.URLError, OSError, ValueError):
        pass
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def jupyterlab(root_dir: Path, work_dir: Path, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 over `root_dir`, with its settings, workspaces and log
    under `work_dir`; `env` adds variables for the server and its kernels (e.g. PYTHONPATH)."""
    port, token = _free_port(), secrets.token_hex(16)
    lab = Lab(f"http://127.0.0.1:{port}", token)
    log = work_dir / "jupyter.log"
    command = [
        str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}", f"--LabApp.workspaces_dir={work_dir / 'workspaces'}",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers run as root
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root_dir,
                                   env=isolated_jupyter_env(work_dir / "home", env), start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _server_answers(lab):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"JupyterLab did not answer on {lab.base} within {SERVER_START_S} s "
                                   f"(exit code {process.poll()}); its log:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield lab
    finally:
        _stop(process, lab)


# ---------------------------------------------------------------- the page


@contextmanager
def notebook_page(lab: Lab, notebook: str, profile_dir: Path, failure_dir: Path,
                  action_s: float = ACTION_S) -> Iterator[Any]:
    """`notebook` (a path under the server's root) open in headless Chromium, its first cell run
    and the widget it displays shown; on failure a screenshot of the page goes to `failure_dir`."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT)
        try:
            context.set_default_timeout(action_s * 1000)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(lab.url(f"lab/tree/{notebook}"), timeout=SERVER_START_S * 1000)
            editor = page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor").first
            editor.wait_for(state="visible", timeout=SERVER_START_S * 1000)
            # Run the cell only once the kernel is up: keys sent before are lost.
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
                state="attached", timeout=SERVER_START_S * 1000)
            try:
                run_first_cell(page, editor)
            except BrowserError as error:
                failure_dir.mkdir(parents=True, exist_ok=True)
                shot = failure_dir / "page.png"
                page.screenshot(path=str(shot))
                text = page.locator(".jp-NotebookPanel").first.inner_text()
                raise BrowserError(f"{error}; screenshot {shot}; the notebook reads:\n{text[-3000:]}") from None
            yield page
        finally:
            context.close()


def run_first_cell(page, editor) -> None:
    """Shift+Enter in the first cell until the widget shows. On a loaded machine the kernel can
    report idle before its channels take requests, and the first request is then dropped (the
    prompt stays `[ ]:`, never `[*]:`); the cell is sent again after RESEND_AFTER_S of that."""
    prompt = page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".jp-InputPrompt")
    shown = widget(page).locator("img")
    deadline, sent = time.monotonic() + KERNEL_RUN_S, -1e9
    while time.monotonic() < deadline:
        if shown.count() and shown.first.is_visible():
            return
        if prompt.inner_text().strip() == "[ ]:" and time.monotonic() - sent > RESEND_AFTER_S:
            editor.click()
            page.keyboard.press("Shift+Enter")
            sent = time.monotonic()
        time.sleep(0.5)
    raise BrowserError(f"the widget's image did not show within {KERNEL_RUN_S} s")


def widget(page):
    """The top-level VBox (the mask browser) in the cell's output."""
    return page.locator(".jp-OutputArea-output .widget-vbox").first


def image(page):
    return widget(page).locator("img").first


def image_png(page) -> bytes:
    """The pixels the page shows for the widget's picture (a screenshot of the <img>)."""
    return image(page).screenshot()


def status_text(page) -> str:
    """The last HTML line of the widget (the mask browser's status line)."""
    return widget(page).locator(".widget-html").last.inner_text()


def control(page, css: str, label: str):
    """The control of kind `css` whose label reads `label` (e.g. the dropdown "clip")."""
    return widget(page).locator(css, has=page.locator("label", has_text=re.compile(f"^{re.escape(label)}$")))


def option_label(text: str) -> str:
    """A dropdown option's text with the no-break spaces ipywidgets renders turned back to spaces."""
    return text.replace("\u00a0", " ")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = ACTION_S) -> bool:
    """Poll `condition` until it holds; `what` (a string, or a function giving one) names it in the error."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise BrowserError(f"waited {timeout_s} s for {what() if callable(what) else what}")
        time.sleep(0.25)
    return True


def widget_errors(page) -> list[str]:
    """What the page shows of errors: a red status line, a widget that failed to display, a traceback."""
    errors = []
    status = widget(page).locator(".widget-html").last
    if status.locator('[style*="#c00"]').count():
        errors.append(f"the status line shows an error: {status.inner_text()}")
    notebook = page.locator(".jp-NotebookPanel").first.inner_text()
    errors += [f"the notebook shows {word!r}" for word in ("Error displaying widget", "Traceback") if word in notebook]
    return errors


def image_loaded(page) -> bool:
    return bool(image(page).evaluate("img => img.complete && img.naturalWidth > 0"))


def act(page, action: Callable[[], None], expected_status: str, image_changes: bool = True,
        timeout_s: float = ACTION_S) -> bool:
    """Do `action`; wait until the status line names `expected_status` and the image is loaded,
    and (when `image_changes`) until the shown image differs from before. Returns whether the
    image changed; raises BrowserError when the page shows an error or a wait runs out."""
    before = image_png(page)
    action()
    wait_until(lambda: expected_status in status_text(page) or bool(widget_errors(page)),
               lambda: f"the status line to show {expected_status!r}; it shows {status_text(page)!r}", timeout_s)
    errors = widget_errors(page)
    if errors:
        raise BrowserError("; ".join(errors))
    wait_until(lambda: image_loaded(page), "the widget's image to load", timeout_s)
    if image_changes:
        wait_until(lambda: image_png(page) != before, "the widget's image to change", timeout_s)
        return True
    time.sleep(1.0)  # the status line is set after the image; give the <img> a moment to paint
    return image_png(page) != before


def screenshot_widget(page, path: Path) -> Path:
    """The whole widget (controls, picture, legend, player, status line) as a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    widget(page).screenshot(path=str(path))
    return path
