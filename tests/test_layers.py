"""The import graph of the package: no circles, no arrows up, no module over 700 lines.

The floors (docs/architecture.md), from the bottom up; a module imports from its own floor
or below. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vtuber"
MAX_LINES = 700

# Floor of each top-level part of the package (a module or a folder).
FLOORS: dict[str, int] = {}
for floor, names in enumerate(
    [
        # 0: foundations: no room of the co-host in them
        ["__init__", "errors", "paths", "clock", "events", "config", "tokens", "door", "audio", "text",
         "resilience", "ports", "devices", "out_folder", "wyoming_client", "wyoming", "heap", "cpu"],
        # 1: the rooms, each a stage of the flow (providers live in their room)
        ["sources", "hearing", "director", "mind", "voice", "outputs", "safety", "memory", "plugins", "facts",
         "language"],
        # 2: the one registry of services, and model paths and catalogue
        ["services", "models"],
        # 3: the wiring: loaded services, one run of the pipeline and its parts
        ["pipeline", "session", "turns", "controls", "intake"],
        # 4: the programs built on a session
        ["rehearsal", "bench", "turn_bench", "load_bench", "bench_hearing", "redteam", "model_check", "quality", "soak", "tune", "commands", "cli", "__main__"],
    ]
):
    for name in names:
        FLOORS[name] = floor


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `module` imports (at the top or inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # The longest known module the dotted name starts with.
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            candidate = ".".join(parts[:n])
            if candidate in known:
                found.add(candidate)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:  # `from vtuber.mind import llm` imports the module vtuber.mind.llm
                if f"{target}.{alias.name}" in known:
                    add(f"{target}.{alias.name}")
                else:
                    add(target)
    found.discard(module)
    return {m for m in found if m.startswith("vtuber")}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _floor(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in FLOORS:
        pytest.fail(f"{module}: its part {top!r} has no floor: add it to FLOORS here and to docs/architecture.md")
    return FLOORS[top]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_of_the_package_has_a_floor():
    for module in _graph():
        _floor(module)


def test_no_import_goes_up_a_floor():
    arrows_up = [
        f"{a} (floor {_floor(a)}) imports {b} (floor {_floor(b)})"
        for a, targets in _graph().items()
        for b in targets
        if _floor(b) > _floor(a)
    ]
    assert not arrows_up, "\n".join(arrows_up)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_import_graph_has_no_circles():
    graph = _graph()
    # A package's __init__ and its own modules may refer to each other (it re-exports them);
    # any circle between different parts of the package, or inside one module tree beyond
    # that, is a circle.
    trimmed = {
        a: {b for b in targets if not (b == a.rsplit(".", 1)[0] or a == b.rsplit(".", 1)[0])}
        for a, targets in graph.items()
    }
    assert _cycles(trimmed) == []


def test_the_cycle_finder_finds_a_circle():
    # The test above can fail: a circle of three and one of two are found, a chain is not.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_relative_imports_resolve_to_the_package_module():
    node = ast.parse("from .llm import X").body[0]
    assert _resolve("vtuber.mind.prompt", False, node) == "vtuber.mind.llm"
    assert _resolve("vtuber.mind", True, node) == "vtuber.mind.llm"


def test_no_module_is_over_700_lines():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
