"""Module boundaries, read from the source: no import cycle among wldetect's modules, detection's import
closure stays NumPy-only (no torch, transformers, pandas ...), and every wldetect name that the package, the
tests, the benchmarks and the notebooks import or use through a module exists where they look for it.

Imports are collected with `ast` from every `wldetect/**/*.py`, at module level and inside functions alike (a
function-level import is still a dependency, only a later one). Imports under `if TYPE_CHECKING:` never run,
so they are left out of detection's closure, but they count for cycles: a module that names another's type
in its signatures depends on it as surely as one that calls it (the project's before-stop check counts them
too).
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wldetect"
DETECTION_FORBIDDEN = ("torch", "transformers", "datasets", "pandas", "matplotlib", "papermill", "scipy", "sklearn")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, type_checking: bool = False):
    """Every Import / ImportFrom node; the bodies of `if TYPE_CHECKING:` only with `type_checking`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _owning_module(dotted: str) -> str | None:
    """The longest prefix of `dotted` that is a wldetect module (`wldetect.lookup.FILE_NAMES` -> wldetect.lookup)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in _modules():
            return ".".join(parts[:end])
    return None


@cache
def _imports(module: str, type_checking: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """(wldetect modules, third-party top-level names) that `module` imports anywhere in its source (with
    `type_checking`, also under `if TYPE_CHECKING:`)."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    internal, external = set(), set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path)), type_checking):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative import: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from wldetect import plots` imports the submodule wldetect.steps.plots; `from wldetect.x import name`, x
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in _modules() else source for alias in node.names]
        for target in targets:
            if target.split(".")[0] == "wldetect":
                owner = _owning_module(target)
                assert owner is not None, f"{path}: imports {target}, which is not a module of the package"
                if owner != module:
                    internal.add(owner)
            else:
                external.add(target.split(".")[0])
    return frozenset(internal), frozenset(external)


def _graph(type_checking: bool = False) -> dict[str, frozenset[str]]:
    return {module: _imports(module, type_checking)[0] for module in _modules()}


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with an explicit stack)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(graph):
        if root in state:
            continue
        path, iterators = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while iterators:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(following) == 1:
                return path[path.index(following) :] + [following]
            elif following not in state:
                state[following] = 1
                path.append(following)
                iterators.append(iter(sorted(graph.get(following, ()))))
    return None


def import_closure(module: str) -> set[str]:
    """Every wldetect module that importing `module` can run, including the packages above each one."""
    graph, seen, todo = _graph(), set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo.extend(".".join(parts[:end]) for end in range(1, len(parts)))  # its packages' __init__ run first
        todo.extend(graph[current])
    return seen


def test_the_graph_sees_the_imports_it_should():
    """Guards the parser itself: known edges of every kind are found."""
    graph = _graph()
    assert "wldetect.errors" in graph["wldetect.io"]  # module level
    assert "wldetect.detect" in graph["wldetect"]  # inside a function, `from wldetect.detect import ...`
    assert "wldetect.steps.plots" in graph["wldetect.steps.results"]  # `from wldetect.steps import plots` is the submodule
    assert "wldetect.sources.demo" in graph["wldetect.sources.data"]  # `from wldetect.sources import demo`
    assert "torch" in _imports("wldetect.steps.model")[1]


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": frozenset({"b"}), "b": frozenset(), "c": frozenset({"a", "b"})}) is None


def test_wldetect_modules_import_each_other_without_cycles():
    cycle = find_cycle(_graph(type_checking=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_detection_imports_no_training_or_analysis_dependency():
    closure = import_closure("wldetect.detect")
    offenders = {
        module: sorted(set(DETECTION_FORBIDDEN) & _imports(module)[1])
        for module in sorted(closure)
        if set(DETECTION_FORBIDDEN) & _imports(module)[1]
    }
    assert not offenders, f"wldetect.detect reaches {sorted(closure)}; these import forbidden packages: {offenders}"


CORE_EXCEPTIONS = ("wldetect.cli",)  # the front door: its commands import every layer, inside each command
UPPER_LAYERS = ("wldetect.steps", "wldetect.workflow")


def _core_modules() -> list[str]:
    """The package root's modules (`wldetect`, `wldetect.detect`, ...): what `pip install wldetect` runs."""
    return [m for m in _modules() if m.count(".") <= 1 and not m.startswith(("wldetect.steps", "wldetect.workflow", "wldetect.sources"))]


def test_the_core_imports_no_step_and_no_workflow_module():
    """The core (detection, the artifacts directory, config, io, run-record rules) stands below the steps and
    the workflow: a function-level import, or one only for type checking, counts as much as a module-level one."""
    core = _core_modules()
    assert {"wldetect", "wldetect.detect", "wldetect.artifacts", "wldetect.io", "wldetect.records"} <= set(core)
    offenders = {
        module: sorted(target for target in _imports(module, type_checking=True)[0] if target.startswith(UPPER_LAYERS))
        for module in core
        if module not in CORE_EXCEPTIONS
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_step_one_files_are_read_without_what_writes_them():
    """Step 1's file format (`steps.count_files`) needs no tokenizer, dataset library, Ray or torch, and the
    steps that only read those files ask it, not `steps.counting`."""
    graph, closure, todo = _graph(), set(), ["wldetect.steps.count_files"]
    while todo:  # what its imports import (the packages above it import nothing at module level but `__getattr__`)
        module = todo.pop()
        if module not in closure:
            closure.add(module)
            todo.extend(graph[module])
    heavy = {"tokenizers", "datasets", "ray", "transformers", "torch"}
    assert {module: sorted(heavy & _imports(module)[1]) for module in closure if heavy & _imports(module)[1]} == {}
    readers = ("wldetect.steps.masking", "wldetect.steps.posthoc", "wldetect.steps.weight_analysis")
    assert {m for m in readers if "wldetect.steps.counting" in _imports(m, type_checking=True)[0]} == set()
    assert all("wldetect.steps.count_files" in _imports(m)[0] for m in readers)


def test_run_records_do_not_load_models_or_data():
    """`workflow.runs` hashes what it is handed: the notebook or its caller says which inputs a step read."""
    assert not any(m.startswith("wldetect.sources") for m in _imports("wldetect.workflow.runs", type_checking=True)[0])


def test_lookup_is_only_table_math_and_formats():
    """The detector reads the table files through `wldetect.lookup`, so it stands on `errors` and `io` alone."""
    assert _graph()["wldetect.lookup"] <= {"wldetect.errors", "wldetect.io"}, sorted(_graph()["wldetect.lookup"])


# ------------------------------------------------------------------------------ names callers rely on


@cache
def _defined_names(module: str) -> frozenset[str]:
    """Names bound at module level (in top-level `if`/`try`/`with` blocks too), plus `__all__` of a package
    that serves names through `__getattr__`."""
    tree = ast.parse(_modules()[module].read_text(encoding="utf-8"))
    names, stack = set(), list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                names.update(ast.literal_eval(node.value))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field_name in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field_name, []))
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)
    return frozenset(names)


def _has(module: str, name: str) -> bool:
    return f"{module}.{name}" in _modules() or name in _defined_names(module)


def _sources() -> list[tuple[str, str]]:
    """(label, Python source) of every file that imports wldetect: package, tests, benchmarks, notebooks."""
    sources = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        sources.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [
            "\n".join(line for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
            for cell in cells
            if cell["cell_type"] == "code"
        ]
        sources.append((str(path.relative_to(ROOT)), "\n\n".join(code)))
    return sources


def _missing_names(label: str, source: str) -> list[str]:
    """`from wldetect.x import name` where x has no `name`, and `x.name` on a wldetect module bound to `x`."""
    problems, bound = [], {}
    tree = ast.parse(source, label)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "wldetect":
            if node.module not in _modules():
                problems.append(f"{label}:{node.lineno}: no module {node.module}")
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                if not _has(node.module, alias.name):
                    problems.append(f"{label}:{node.lineno}: {node.module} has no {alias.name}")
                elif f"{node.module}.{alias.name}" in _modules():
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "wldetect":
                    if alias.name not in _modules():
                        problems.append(f"{label}:{node.lineno}: no module {alias.name}")
                    elif alias.asname:
                        bound[alias.asname] = alias.name
    # A name that is bound to something else anywhere in the file (`import gguf` of the library in one function,
    # `from wldetect.sources import gguf` in another) is not checked: which binding an access sees is a scope question.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            others = [alias for alias in node.names if alias.name.split(".")[0] != "wldetect"]
        elif isinstance(node, ast.ImportFrom):
            others = node.names if node.level or (node.module or "").split(".")[0] != "wldetect" else []
        else:
            others = []
        for alias in others:
            bound.pop((alias.asname or alias.name).split(".")[0], None)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.pop(node.id, None)
        elif isinstance(node, ast.arg):
            bound.pop(node.arg, None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            module = bound[node.value.id]
            if not _has(module, node.attr):
                problems.append(f"{label}:{node.lineno}: {module} has no {node.attr}")
    return problems


@pytest.mark.parametrize("label, source", _sources(), ids=[label for label, _ in _sources()])
def test_every_imported_wldetect_name_exists(label, source):
    assert _missing_names(label, source) == []
