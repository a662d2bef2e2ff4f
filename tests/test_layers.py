"""The package's layers: a lower layer never imports a higher one, and no module imports form a cycle.

Layers, from the bottom: helpers (atomic writes, config tools) < data < models < losses and
metrics < config < engine < datatools (the benchmark tooling: generator, checker, crop labels)
< report < cli. Every import is counted, the ones inside functions too (a function-level import
is still a dependency); only `if TYPE_CHECKING:` blocks are not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "avs_lib"

LAYERS = [
    ("avs_lib", "avs_lib.atomic", "avs_lib.configtools"),
    ("avs_lib.data",),
    ("avs_lib.models",),
    ("avs_lib.losses", "avs_lib.metrics"),
    ("avs_lib.config",),
    ("avs_lib.engine",),
    ("avs_lib.datatools",),
    ("avs_lib.report",),
    ("avs_lib.cli", "avs_lib.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best = -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "avs_lib" and module != "avs_lib":
                continue
            if module == prefix or module.startswith(prefix + "."):
                best = index
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """Modules of avs_lib that `path` imports (`from avs_lib.data import X` counts as avs_lib.data)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("avs_lib"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avs_lib"):
            found.add(node.module)
            for alias in node.names:  # `from avs_lib.report import viz` imports a submodule
                candidate = f"{node.module}.{alias.name}"
                if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").is_file():
                    found.add(candidate)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


CORE = ("avs_lib.models", "avs_lib.losses", "avs_lib.metrics", "avs_lib.config", "avs_lib.engine",
        "avs_lib.data")
BENCHMARK = ("avs_lib.datatools",)  # the synthetic generator and dataset tooling sit beside the core, not in it
ANALYSIS = ("avs_lib.report.experiments", "avs_lib.report.inspection", "avs_lib.report.stats",
            "avs_lib.report.results")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _core_modules(graph: dict[str, set[str]]) -> list[str]:
    return [module for module in graph if _within(module, CORE) and not _within(module, BENCHMARK)]


def test_the_core_never_imports_the_report():
    graph = import_graph()
    leaks = [f"{module} imports {target}" for module in _core_modules(graph)
             for target in sorted(graph[module]) if _within(target, ("avs_lib.report",))]
    assert not leaks, "core modules importing the report:\n" + "\n".join(leaks)


def test_the_core_never_imports_the_benchmark_tooling():
    graph = import_graph()
    leaks = [f"{module} imports {target}" for module in _core_modules(graph)
             for target in sorted(graph[module]) if _within(target, BENCHMARK)]
    assert not leaks, "core modules importing the benchmark tooling:\n" + "\n".join(leaks)


def test_the_benchmark_tooling_never_imports_the_report():
    graph = import_graph()
    leaks = [f"{module} imports {target}" for module in graph if _within(module, BENCHMARK)
             for target in sorted(graph[module]) if _within(target, ("avs_lib.report", "avs_lib.cli"))]
    assert not leaks, "benchmark tooling importing the report:\n" + "\n".join(leaks)


def test_the_reports_analysis_never_imports_its_plotting():
    graph = import_graph()
    leaks = [f"{module} imports avs_lib.report.viz" for module in ANALYSIS if "avs_lib.report.viz" in graph[module]]
    assert not leaks, "analysis modules importing viz:\n" + "\n".join(leaks)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules, or None. A package's own
    `__init__` importing its submodules is not a cycle with them unless they import it back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target == node:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ],
)
def test_cycle_finder_finds_cycles(graph, has_cycle):
    assert (find_cycle(graph) is not None) == has_cycle


def test_upward_import_is_detected(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from avs_lib.report import viz\n")
    assert "avs_lib.report.viz" in imports_of(source)
    assert layer_of("avs_lib.report.viz") > layer_of("avs_lib.data.audio")


MAX_FUNCTION_LINES = 80  # a function a reader takes in at once; longer ones are split by what they do


def test_no_function_of_the_package_is_over_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
