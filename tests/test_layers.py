"""The package's layers: who may import whom.

Every module is parsed with `ast`; every import counts, also those inside
functions and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trio_live

PACKAGE = Path(trio_live.__file__).resolve().parent

#: The layers from top to bottom; each maps its groups to their modules (names
#: inside ``trio_live``; a package stands for all its modules, "" is the
#: package's own ``__init__``). A module may import its own group, another
#: group of its layer when the layer is one group, and any layer below; groups
#: that share a layer (the components) do not import each other.
LAYERS: list[dict[str, list[str]]] = [
    {"apps": ["_cli", "__main__"]},
    {"web": ["web"]},
    {"voice": ["voice"], "models": ["models"]},
    {
        "session": [
            "",
            "_session",
            "_driver",
            "_generation",
            "_toolruns",
            "_chain",
            "_model",
            "_playback",
            "_record",
            "testing",
        ]
    },
    {
        "core": [
            "_policy",
            "_actions",
            "policy",
            "_prompt",
            "_parts",
            "_tools",
            "_errors",
            "_checks",
            "_stats",
            "_gc",
            "_groups",
            "_httpclient",
            "_httpstatus",
            "_wav",
            "_replay_log",
            "_replay_view",
            "_logging",
        ]
    },
]


def module_names() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = [PACKAGE.name, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from package import module`` imports the module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES)
    return found


def place(module: str) -> tuple[int, str]:
    """The layer (0 is the top) and the group of ``module``."""
    name = module.removeprefix(PACKAGE.name).removeprefix(".")
    for index, layer in enumerate(LAYERS):
        for group, members in layer.items():
            for member in members:
                if name == member or (member and name.startswith(f"{member}.")):
                    return index, group
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        place(module)


def test_nothing_imports_from_a_layer_above_or_a_sibling() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        layer, group = place(module)
        for target in sorted(targets):
            target_layer, target_group = place(target)
            if target_layer < layer:
                wrong.append(f"{module} ({group}) imports {target} ({target_group}), above it")
            elif target_layer == layer and target_group != group:
                wrong.append(f"{module} ({group}) imports its sibling {target} ({target_group})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_components_private_module() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        for target in sorted(targets):
            parts = target.split(".")
            for depth in range(2, len(parts)):
                owner = ".".join(parts[:depth])
                inside = module == owner or module.startswith(f"{owner}.")
                if parts[depth].startswith("_") and not inside:
                    wrong.append(f"{module} imports {target}, private to {owner}")
                    break
    assert not wrong, "\n".join(wrong)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module.

    (Tarjan's algorithm; a module importing itself counts as a cycle too.)
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"], ["d"]]


def test_no_import_cycles() -> None:
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
