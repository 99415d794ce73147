"""The three places dependencies are written down must agree."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> set[str]:
    """Every requirement of the core and of every extra; `wldetect[train]` (an extra built on another) is not
    a package to install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    return {r for group in groups for r in group if _name(r) != "wldetect"}


def test_environment_yml_lists_exactly_the_pyproject_dependencies():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(r for r in pip_section if not r.startswith("-")) == sorted(_declared())


def test_every_dependency_is_pinned_in_the_lock_and_torch_is_2_13():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in _declared()}
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            locked[_name(name)] = version
    assert declared <= set(locked), sorted(declared - set(locked))
    assert locked["torch"] == "2.13.0"
    assert "torch==2.13.0" in project["optional-dependencies"]["train"]


def test_the_core_is_what_detection_needs():
    """`pip install wldetect` is the NumPy-only detector: no torch, no training or notebook stack in the core."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert core == {"numpy", "tokenizers", "safetensors", "ml-dtypes", "pyyaml", "pydantic", "typer"}


def test_make_install_installs_every_extra_the_workflow_and_tests_need():
    makefile = (ROOT / "Makefile").read_text()
    assert "-e '.[train,workflow,references,dev]'" in makefile
    assert "torch==2.13.0" in makefile and "-c requirements.lock" in makefile
