"""pyproject.toml, environment.yml and constraints.txt describe the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("fgfs")]
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def environment_requirements() -> dict[str, str]:
    """Name -> specifier of every package line in environment.yml (conda and pip sections)."""
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        match = re.match(r"^\s*-\s+([A-Za-z0-9_.\-]+)\s*((?:[<>=!~]=?[^\s#]+,?)*)\s*(#.*)?$", line)
        if match and match.group(1) not in ("pip", "-e", "-c"):
            found[match.group(1).lower()] = match.group(2)
    return found


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = Version(version.strip())
    return pins


def test_environment_yml_has_every_pyproject_dependency_with_the_same_range():
    env = environment_requirements()
    for name, req in pyproject_requirements().items():
        assert name in env, f"environment.yml lacks {name} (pyproject.toml asks for {req})"
        assert env[name] == str(req.specifier), f"{name}: environment.yml says {env[name]!r}, pyproject {req.specifier}"


def test_environment_yml_has_nothing_pyproject_lacks():
    extra = set(environment_requirements()) - set(pyproject_requirements()) - {"python"}
    assert not extra, f"environment.yml has packages pyproject.toml lacks: {sorted(extra)}"


def test_python_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert environment_requirements()["python"] == project["requires-python"]


def test_constraints_pin_torch_and_satisfy_the_ranges():
    pins = constraints()
    assert pins["torch"] == Version("2.14.1")
    assert pins["torchvision"] == Version("0.29.1")
    for name, req in pyproject_requirements().items():
        assert name in pins, f"constraints.txt does not pin {name}"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates pyproject's {req.specifier}"
