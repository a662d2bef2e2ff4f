"""Line counts of the package by part, as issue "A thin avs_lib" measures them (`wc -l` lines).

    python tools/line_counts.py            # the working tree
    python tools/line_counts.py REV        # a commit, e.g. HEAD~3

Parts: the core (what a run computes), the synthetic benchmark and dataset tooling, the report,
the CLI, and the notebooks' code (code cells of notebooks/0*.ipynb plus any notebooks/*.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import PurePosixPath

BENCHMARK = ("avs_lib/datatools/",)
REPORT = ("avs_lib/report/",)
CLI = ("avs_lib/cli.py", "avs_lib/__main__.py")
NAMED = ("avs_lib/models/", "avs_lib/losses.py", "avs_lib/metrics.py")


def files(rev: str | None) -> dict[str, str]:
    """Text of every tracked-or-present .py under avs_lib/ and of the notebooks, at `rev` or on disk."""
    if rev is None:
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                                "avs_lib", "notebooks"], capture_output=True, text=True, check=True).stdout.split()
        out = {}
        for name in names:
            try:
                out[name] = open(name, encoding="utf-8").read()
            except FileNotFoundError:  # deleted in the working tree, not yet in git
                pass
        return out
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "avs_lib", "notebooks"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {name: subprocess.run(["git", "show", f"{rev}:{name}"], capture_output=True, text=True,
                                 check=True).stdout for name in names}


def counts(texts: dict[str, str]) -> dict[str, int]:
    lines = {name: text.count("\n") for name, text in texts.items() if name.endswith(".py")}
    part = {name: next((label for label, prefixes in (("benchmark", BENCHMARK), ("report", REPORT), ("cli", CLI))
                        if name.startswith(prefixes)), "core") for name in lines if name.startswith("avs_lib/")}
    notebook_code = sum(lines[name] for name in lines if name.startswith("notebooks/"))
    for name, text in texts.items():
        if name.endswith(".ipynb") and PurePosixPath(name).parent.name == "notebooks" \
                and PurePosixPath(name).name.startswith("0"):
            cells = json.loads(text)["cells"]
            notebook_code += sum(len("".join(c["source"]).splitlines()) for c in cells if c["cell_type"] == "code")
    result = {label: sum(lines[n] for n, p in part.items() if p == label) for label in ("core", "benchmark", "report", "cli")}
    result["package"] = sum(result.values())
    result["named"] = sum(lines[n] for n in part if n.startswith(NAMED))
    result["notebooks"] = notebook_code
    result["package+notebooks"] = result["package"] + notebook_code
    return result


if __name__ == "__main__":
    c = counts(files(sys.argv[1] if len(sys.argv) > 1 else None))
    for label, value in c.items():
        print(f"{label:18s} {value:6d}")
    print(f"{'named/core':18s} {c['named'] / c['core']:6.1%}  (models + losses + metrics)")
