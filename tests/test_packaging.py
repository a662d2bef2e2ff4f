"""The project installs the same things whichever way a user sets it up."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs |= set(extra)
    return reqs


def _environment_pip_requirements() -> tuple[set[str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    pip = [line for section in pip_sections for line in section]
    return {r for r in pip if not r.startswith("-e")}, [r for r in pip if r.startswith("-e")]


def test_environment_yml_lists_exactly_the_pyproject_requirements():
    env_reqs, _ = _environment_pip_requirements()
    assert env_reqs == _pyproject_requirements()


def test_environment_yml_installs_the_project_itself():
    _, editable = _environment_pip_requirements()
    assert editable == ["-e ."]


def test_environment_yml_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_torch_and_torchvision_are_pinned_to_the_pair_that_imports_here():
    reqs = _pyproject_requirements()
    assert "torch==2.14.1" in reqs and "torchvision==0.29.1" in reqs


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
