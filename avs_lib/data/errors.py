"""Errors for bad dataset files (always carry the path and what was expected), and the fixes they suggest."""

from pathlib import Path


class DataFormatError(ValueError):
    """A file exists but its content is not what the AVSBench layout expects."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{self.path}: {problem}")


def crop_labels_instruction(root: str | Path) -> str:
    """How to make crop labels for a tree that has none (the readers, the config check and
    notebook 02 say this), with the root absolute: a notebook runs in another folder."""
    return (f"make them from the ground-truth masks with `python -m avs_lib crop-labels {Path(root).resolve()}`, "
            "then review them in notebook 02 and correct them in labelImg")
