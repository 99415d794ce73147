"""`pip install wldetect` (the core alone) installs and detects, offline, and answers as the full install does.

A fresh virtual environment sees only the distributions the core requirements of pyproject.toml name, and
theirs, recursively (symlinked from this environment: nothing is downloaded); wldetect goes in as a wheel
built from this checkout. There `import torch` fails, `pip check` finds every requirement met, and
`WLDetect` and the `wldetect detect` command give on a trained model exactly the answers they give here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from conftest import TINY_LANGUAGES, counted_token_ids, module_tiny_project, tiny_sentences
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
NOT_IN_THE_CORE = ("torch", "transformers", "datasets", "pandas", "scipy", "sklearn", "matplotlib", "papermill")
TEXTS = [text for code in TINY_LANGUAGES for text in tiny_sentences(code, 5, seed=11)] + ["", "le cat", "!!!"]


def core_distributions() -> list[metadata.Distribution]:
    """The installed distributions of the core requirements and of their requirements, recursively (extras
    of a requirement included; markers evaluated for this interpreter)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found[name] = distribution = metadata.distribution(requirement.name)
        for text in distribution.requires or []:
            needed = Requirement(text)
            extras = {""} | set(requirement.extras)
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(needed)
    return list(found.values())


def link_distributions(distributions: list[metadata.Distribution], directory: Path) -> list[str]:
    """Symlink every top-level file and directory the distributions installed (packages, modules, vendored
    libraries, dist-info) into `directory`; returns their names."""
    directory.mkdir(parents=True)
    names = set()
    for distribution in distributions:
        for file in distribution.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top in names:
                continue
            source = Path(distribution.locate_file(top))
            if source.exists():
                (directory / top).symlink_to(source)
                names.add(top)
    return sorted(names)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny model trained here (the full install): the artifacts directory."""
    from wldetect.config import load_training_config
    from wldetect.steps.training import train

    root = tmp_path_factory.mktemp("core-install-project")
    with module_tiny_project(root) as (config, _, _):
        config = load_training_config(config, {"training.epochs": 4})
        return train(config, output_dir=root / "artifacts", token_ids=counted_token_ids(config), verbose=False).artifacts_dir


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory) -> Path:
    """A venv holding wldetect's wheel and the core distributions only; returns its directory."""
    root = tmp_path_factory.mktemp("core-install")
    source = root / "source"  # built from a copy: setuptools writes build/ and *.egg-info next to the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "wldetect", source / "wldetect", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = {**_clean_env(), "PIP_NO_INDEX": "1"}  # nothing is downloaded, not even build requirements
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(source)],
        check=True, env=offline, capture_output=True,
    )  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    linked = link_distributions(core_distributions(), root / "core-site")
    assert "numpy" in linked and "tokenizers" in linked and "torch" not in linked
    (Path(purelib) / "wldetect-core.pth").write_text(f"{root / 'core-site'}\n")
    wheel = next((root / "dist").glob("wldetect-*.whl"))
    for command in (["install", "--no-deps", "--no-index", "-q", str(wheel)], ["check"]):
        result = subprocess.run([*pip, "--python", str(python), *command], env=offline, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr  # check: every core requirement is met
    return venv


def _clean_env() -> dict[str, str]:
    """This test session's environment without what would let the venv see this checkout or other packages."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "PYTHONNOUSERSITE": "1"}


def _answers(detector) -> str:
    return json.dumps([detector.predict(TEXTS), detector.predict(TEXTS, top_k=2), detector.predict(TEXTS[0])], default=float)


def test_the_core_alone_detects_as_the_full_install_does(core_venv, trained, tmp_path):
    from wldetect import WLDetect

    code = f"""
import importlib.util, json, sys
try:
    import torch
except ImportError:
    pass
else:
    sys.exit("torch is importable with the core alone")
present = [name for name in {NOT_IN_THE_CORE!r} if importlib.util.find_spec(name) is not None]
assert not present, present
import wldetect
assert wldetect.__file__.startswith({str(core_venv)!r}), wldetect.__file__  # the installed wheel, not this checkout
from wldetect import WLDetect
texts = json.loads({json.dumps(TEXTS)!r})
detector = WLDetect.load({str(trained)!r})
print(json.dumps([detector.predict(texts), detector.predict(texts, top_k=2), detector.predict(texts[0])], default=float))
"""
    result = subprocess.run(
        [str(core_venv / "bin" / "python"), "-I", "-c", code], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(_answers(WLDetect.load(trained)))

    command = [str(core_venv / "bin" / "wldetect"), "detect", "--model-path", str(trained), "--text", TEXTS[0]]
    result = subprocess.run(command, cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    language, confidence = WLDetect.load(trained).predict(TEXTS[0])
    assert result.stdout == f"{language}\t{confidence:.4f}\n"
