"""The project installs the same things whichever way a user sets it up."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs |= set(extra)
    return reqs


def _environment_pip_lines() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [line for section in pip_sections for line in section]


def _lock() -> dict[str, str]:
    """requirements.lock as canonical name -> pinned version."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            assert match, f"requirements.lock: {line!r} is not an exact pin"
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_the_lock_pins_every_pyproject_requirement_within_its_range():
    pins = _lock()
    for text in _pyproject_requirements():
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} (pyproject.toml) is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}; run `make lock`")


def test_environment_yml_installs_the_lock_and_the_project_itself():
    assert _environment_pip_lines() == ["-r requirements.lock", "-e ."]


def test_make_installs_from_the_lock_by_default():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK \?= requirements\.lock$", makefile, re.M)
    assert "pip install --quiet -r $(LOCK)" in makefile


def test_environment_yml_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_torch_and_torchvision_are_pinned_to_the_pair_that_imports_here():
    reqs = _pyproject_requirements()
    assert "torch==2.14.1" in reqs and "torchvision==0.29.1" in reqs
    assert _lock()["torch"] == "2.14.1" and _lock()["torchvision"] == "0.29.1"


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
