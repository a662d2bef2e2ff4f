"""Errors for bad dataset files: always carry the path and what was expected."""

from pathlib import Path


class DataFormatError(ValueError):
    """A file exists but its content is not what the AVSBench layout expects."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
