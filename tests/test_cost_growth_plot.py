"""The cost-growth figure draws one line per TPAVI implementation along each varied quantity."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_cost_growth import plot_cost_growth  # noqa: E402  (the benchmark's own figure)


def test_cost_growth_plot_has_a_line_per_implementation_and_axis():
    base = {"batch": 2, "image_size": 64, "frames": 5}
    rows = []
    for impl, scale in (("naive", 2.0), ("fast", 1.0)):
        for batch in (1, 2, 4):
            rows.append({"impl": impl, "batch": batch, "image_size": 64, "frames": 5,
                         "median_s": scale * batch, "step_mb": 10.0 * scale * batch})
        for size in (32, 96):
            rows.append({"impl": impl, "batch": 2, "image_size": size, "frames": 5,
                         "median_s": scale * size, "step_mb": scale * size})
        rows.append({"impl": impl, "batch": 2, "image_size": 64, "frames": 3, "median_s": scale, "step_mb": scale})
    rows.append({"impl": "naive", "batch": 8, "image_size": 64, "frames": 5, "skipped": "too big"})
    fig = plot_cost_growth(rows, base)
    axes = fig.axes
    assert len(axes) == 6
    batch_time = axes[0]
    assert [len(line.get_xdata()) for line in batch_time.lines] == [3, 3]  # skipped point left out
    assert list(batch_time.lines[0].get_ydata()) == [2.0, 4.0, 8.0]
    assert [len(line.get_xdata()) for line in axes[1].lines] == [3, 3]  # image sizes 32, 64, 96
