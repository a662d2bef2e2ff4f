"""The mask browser driven in a real JupyterLab, in headless Chromium: a person's clicks reach
the kernel and the picture, the status line and the audio player follow.

The kernel-less tests (test_viz.py) set widget values from Python; only a browser shows that
the front end renders the widgets, sends the slider, dropdown and toggle back, and displays the
new image. Needs Debian's Chromium (/usr/bin/chromium) and the `playwright` package
(`make test-browser` installs both); without them every test here is skipped.

One JupyterLab server, one kernel and one page are shared by the tests of this module
(starting them takes tens of seconds); each test is one action and what it must change.
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
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"
SERVER_START_S = 180  # JupyterLab on a loaded 2-core machine can take 30+ s
KERNEL_RUN_S = 180  # the cell imports torch and reads the clips
ACTION_S = 60
FRAMES, WAV_SECONDS = 5, 5.0  # a synthetic clip: 5 frames, 5 s of audio

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (make test-browser installs it)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install '.[browser]')")

NOTEBOOK_CODE = """\
import numpy as np

from avs_lib.data.avsbench import AVSBenchS4
from avs_lib.report.inspection import clip_view, clip_waveform
from avs_lib.report.viz import MaskBrowser

dataset = AVSBenchS4({root!r}, "test", image_size=64, crop_labels=False)
clips = [clip_view(dataset, i) for i in range(len(dataset))]
partners = [(i + 1) % len(clips) for i in range(len(clips))]
for clip, partner in zip(clips, partners):
    clip["swap_partner"] = clips[partner]["name"]


def predict(run, index, swapped):
    # a fake model: a square that moves with the frame, the clip and the audio
    t, s = clips[index]["frames"].shape[:2]
    probs = np.full((t, s, s), 0.1)  # [T, S, S]
    for k in range(t):
        top, left = 4 + 8 * k, 4 + 12 * index + 24 * int(swapped)
        probs[k, top : top + 14, left : left + 14] = 0.9
    return probs


def audio(index, swapped):
    return clip_waveform(dataset, partners[index] if swapped else index)


browser = MaskBrowser(clips, predict, ["fake_run"], audio=audio)
browser
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(path: Path, data_root: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE.format(root=str(data_root)))]
    nbformat.write(nb, path)


def _isolated_jupyter_env(home: Path) -> dict[str, str]:
    """Config, data and runtime folders of our own, so nothing from the user's Jupyter set-up
    (kernels, workspaces, settings) reaches the test; the news pop-up is switched off."""
    env = dict(os.environ)
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


def _server_answers(base: str, token: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels down through the server, then end the server's process group; whatever
    it started outside its group (kernels run in their own session) is ended by id."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as response:
            kernels = json.load(response)
        for kernel in kernels:
            request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
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


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on 127.0.0.1 over a folder with the test notebook: (base URL, token)."""
    from avs_lib.data.synth import make_dataset

    tmp = tmp_path_factory.mktemp("browser")
    root_dir = tmp / "lab"
    root_dir.mkdir()
    make_dataset(tmp / "data", videos_per_split=(2, 3, 3), image_size=64, progress=False, workers=1)
    _write_notebook(root_dir / "mask_browser.ipynb", tmp / "data")
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log = tmp / "jupyter.log"
    command = [
        str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers run as root
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root_dir,
                                   env=_isolated_jupyter_env(tmp / "home"), start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _server_answers(base, token):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within {SERVER_START_S} s "
                            f"(exit code {process.poll()}); its log:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield base, token
    finally:
        _stop(process, base, token)


@pytest.fixture(scope="module")
def page(jupyter_server, tmp_path_factory):
    """The test notebook open in headless Chromium, its cell run, the browser widget shown."""
    base, token = jupyter_server
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=str(CHROMIUM),
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1900})
        try:
            context.set_default_timeout(ACTION_S * 1000)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{base}/lab/tree/mask_browser.ipynb?token={token}", timeout=SERVER_START_S * 1000)
            editor = page.locator(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor").first
            editor.wait_for(state="visible", timeout=SERVER_START_S * 1000)
            # Run the cell only once the kernel is up: keys sent before are lost.
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for(
                state="attached", timeout=SERVER_START_S * 1000)
            try:
                _run_first_cell(page, editor)
            except sync_api.TimeoutError:
                shot = tmp_path_factory.mktemp("failed") / "page.png"
                page.screenshot(path=str(shot))
                text = page.locator(".jp-NotebookPanel").first.inner_text()
                pytest.fail(f"the browser widget did not show within {KERNEL_RUN_S} s; screenshot {shot}; "
                            f"the notebook reads:\n{text[-3000:]}")
            yield page
        finally:
            context.close()


# ---------------------------------------------------------------- page parts


def _run_first_cell(page, editor) -> None:
    """Shift+Enter in the first cell until the widget shows. On a loaded machine the kernel can
    report idle before its channels take requests, and the first request is then dropped (the
    prompt stays `[ ]:`, never `[*]:`); the cell is sent again after 20 s of that."""
    prompt = page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".jp-InputPrompt")
    image = _widget(page).locator("img")
    deadline, sent = time.monotonic() + KERNEL_RUN_S, -1e9
    while time.monotonic() < deadline:
        if image.count() and image.first.is_visible():
            return
        if prompt.inner_text().strip() == "[ ]:" and time.monotonic() - sent > 20:
            editor.click()
            page.keyboard.press("Shift+Enter")
            sent = time.monotonic()
        time.sleep(0.5)
    raise sync_api.TimeoutError(f"no widget image after {KERNEL_RUN_S} s")


def _widget(page):
    """The browser's top-level VBox in the cell's output."""
    return page.locator(".jp-OutputArea-output .widget-vbox").first


def _image(page):
    return _widget(page).locator("img").first


def _status_text(page) -> str:
    return _widget(page).locator(".widget-html").last.inner_text()


def _control(page, css: str, label: str):
    """The control of kind `css` whose label reads `label` (e.g. the dropdown "clip")."""
    return _widget(page).locator(css, has=page.locator("label", has_text=re.compile(f"^{label}$")))


def _image_png(page) -> bytes:
    """The pixels the page shows for the browser's picture (a screenshot of the <img>)."""
    return _image(page).screenshot()


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = ACTION_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s} s for {what}")
        time.sleep(0.25)


def _assert_no_widget_error(page) -> None:
    """No red error in the status line, no widget that failed to display, no traceback."""
    status = _widget(page).locator(".widget-html").last
    assert status.locator('[style*="#c00"]').count() == 0, f"status line shows an error: {status.inner_text()}"
    notebook = page.locator(".jp-NotebookPanel").first.inner_text()
    assert "Error displaying widget" not in notebook
    assert "Traceback" not in notebook


def _act_and_see_change(page, action: Callable[[], None], expected_status: str, figure: str) -> str:
    """Do `action`; wait until the status line names `expected_status` and the shown image
    differs from before; save the browser's screenshot as figures/`figure`.png."""
    before = _image_png(page)
    action()
    _wait_until(lambda: expected_status in _status_text(page), f"status line to show {expected_status!r}; "
                f"it shows {_status_text(page)!r}")
    _wait_until(lambda: _image_png(page) != before, "the mask image to change")
    _assert_no_widget_error(page)
    FIGURES.mkdir(exist_ok=True)
    _widget(page).screenshot(path=str(FIGURES / f"{figure}.png"))
    return _status_text(page)


# ---------------------------------------------------------------- the tests (in page order)


def test_browser_renders_in_jupyterlab_without_error(page):
    status = _status_text(page)
    assert "frame 1/5" in status and "fake_run" in status and "IoU" in status
    assert _image(page).evaluate("img => img.naturalWidth") >= 256
    _assert_no_widget_error(page)
    FIGURES.mkdir(exist_ok=True)
    _widget(page).screenshot(path=str(FIGURES / "mask_browser_initial.png"))


def test_browser_audio_player_loads_the_clip_sound(page):
    player = _widget(page).locator("audio")
    assert player.count() == 1
    _wait_until(lambda: player.evaluate("a => a.readyState") >= 1, "the audio player to read the WAV")
    assert player.evaluate("a => a.duration") == pytest.approx(WAV_SECONDS, abs=0.05)


def test_browser_frame_slider_moves_by_keyboard(page):
    handle = _control(page, ".widget-slider", "frame").locator(".noUi-handle").first
    handle.focus()
    _act_and_see_change(page, lambda: handle.press("ArrowRight"), "frame 2/5", "mask_browser_frame")


def test_browser_clip_dropdown_switches_clip(page):
    dropdown = _control(page, ".widget-dropdown", "clip").locator("select")
    second = dropdown.locator("option").nth(1).inner_text()
    name = second.split()[0]  # ipywidgets renders the label's spaces as no-break spaces
    status = _act_and_see_change(page, lambda: dropdown.select_option(index=1), f"{name} (", "mask_browser_clip")
    assert "frame 1/5" in status  # a new clip starts at its first frame


def test_browser_swapped_audio_toggle_changes_mask_and_sound(page):
    player = _widget(page).locator("audio")
    sound_before = player.evaluate("a => a.src")
    toggle = _widget(page).locator("button", has_text="swapped audio")
    _act_and_see_change(page, toggle.click, "swapped audio from", "mask_browser_swapped")
    _wait_until(lambda: player.evaluate("a => a.src") != sound_before, "the audio player to load the swapped-in sound")
    assert "mod-active" in (toggle.get_attribute("class") or "")
