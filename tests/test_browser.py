"""The mask browser driven in a real JupyterLab, in headless Chromium: a person's clicks reach
the kernel and the picture, the status line and the audio player follow.

The kernel-less tests (test_viz.py) set widget values from Python; only a browser shows that
the front end renders the widgets, sends the slider, dropdown and toggle back, and displays the
new image. Needs Debian's Chromium (/usr/bin/chromium) and the `playwright` package
(`make test-browser` installs both); without them every test here is skipped. The harness
(server, page, waits) is tools/jupyter_browser.py, shared with the README's screenshot script;
this test runs over a fake predictor, so its screenshots stay in its temporary folder.

One JupyterLab server, one kernel and one page are shared by the tests of this module
(starting them takes tens of seconds); each test is one action and what it must change.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
try:
    import jupyter_browser as lab
finally:
    sys.path.remove(str(REPO / "tools"))

FRAMES, WAV_SECONDS = 5, 5.0  # a synthetic clip: 5 frames, 5 s of audio

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not lab.CHROMIUM.is_file(), reason=f"{lab.CHROMIUM} not installed (make test-browser installs it)"),
]
pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install '.[browser]')")

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


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the test's screenshots go (never figures/: the README's come from real runs)."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def jupyter_server(tmp_path_factory) -> Iterator[lab.Lab]:
    """A JupyterLab server on 127.0.0.1 over a folder with the test notebook."""
    from avs_lib.datatools.synth import make_dataset

    tmp = tmp_path_factory.mktemp("browser")
    root_dir = tmp / "lab"
    root_dir.mkdir()
    make_dataset(tmp / "data", videos_per_split=(2, 3, 3), image_size=64, progress=False, workers=1)
    lab.write_notebook(root_dir / "mask_browser.ipynb", NOTEBOOK_CODE.format(root=str(tmp / "data")))
    with lab.jupyterlab(root_dir, tmp) as server:
        yield server


@pytest.fixture(scope="module")
def page(jupyter_server, tmp_path_factory):
    """The test notebook open in headless Chromium, its cell run, the browser widget shown."""
    with lab.notebook_page(jupyter_server, "mask_browser.ipynb", tmp_path_factory.mktemp("chromium_profile"),
                           tmp_path_factory.mktemp("failed")) as page:
        yield page


def _act_and_see_change(page, action, expected_status: str, shot: Path) -> str:
    """Do `action`; the status line must name `expected_status` and the image must change."""
    lab.act(page, action, expected_status, image_changes=True)
    assert not lab.widget_errors(page)
    lab.screenshot_widget(page, shot)
    return lab.status_text(page)


# ---------------------------------------------------------------- the tests (in page order)


def test_browser_renders_in_jupyterlab_without_error(page, shots):
    status = lab.status_text(page)
    assert "frame 1/5" in status and "fake_run" in status and "IoU" in status
    assert lab.image(page).evaluate("img => img.naturalWidth") >= 256
    assert not lab.widget_errors(page)
    lab.screenshot_widget(page, shots / "mask_browser_initial.png")


def test_browser_audio_player_loads_the_clip_sound(page):
    player = lab.widget(page).locator("audio")
    assert player.count() == 1
    lab.wait_until(lambda: player.evaluate("a => a.readyState") >= 1, "the audio player to read the WAV")
    assert player.evaluate("a => a.duration") == pytest.approx(WAV_SECONDS, abs=0.05)


def test_browser_frame_slider_moves_by_keyboard(page, shots):
    handle = lab.control(page, ".widget-slider", "frame").locator(".noUi-handle").first
    handle.focus()
    _act_and_see_change(page, lambda: handle.press("ArrowRight"), "frame 2/5", shots / "mask_browser_frame.png")


def test_browser_clip_dropdown_switches_clip(page, shots):
    dropdown = lab.control(page, ".widget-dropdown", "clip").locator("select")
    name = lab.option_label(dropdown.locator("option").nth(1).inner_text()).split()[0]
    status = _act_and_see_change(page, lambda: dropdown.select_option(index=1), f"{name} (",
                                 shots / "mask_browser_clip.png")
    assert "frame 1/5" in status  # a new clip starts at its first frame


def test_browser_swapped_audio_toggle_changes_mask_and_sound(page, shots):
    player = lab.widget(page).locator("audio")
    sound_before = player.evaluate("a => a.src")
    toggle = lab.widget(page).locator("button", has_text="swapped audio")
    _act_and_see_change(page, toggle.click, "swapped audio from", shots / "mask_browser_swapped.png")
    lab.wait_until(lambda: player.evaluate("a => a.src") != sound_before, "the audio player to load the swapped-in sound")
    assert "mod-active" in (toggle.get_attribute("class") or "")
