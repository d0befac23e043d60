"""The layout's rules, checked from the source: no import cycles, the core never imports the edge or the sandbox."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "storage", "sandbox")
COMPOSITION_ROOT = "bot.app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    """Every module of our packages by dotted name (migrations included: they are code too)."""
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an `from ... import` names, relative imports included."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(tree: ast.AST, *, type_checking: bool) -> list[ast.AST]:
    """Every node of `tree`; without the bodies of `if TYPE_CHECKING:` unless `type_checking`."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if not type_checking and _is_type_checking_block(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _targets(module: str, tree: ast.AST, is_package: bool, *, type_checking: bool) -> set[str]:
    """Everything a module imports, anywhere in it: at the top, inside functions, and (if asked) for typing."""
    found: set[str] = set()
    for node in _walk(tree, type_checking=type_checking):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, is_package)
            found.add(source)
            # `from pkg import mod` imports the module pkg.mod when there is one
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


@cache
def _imports(*, type_checking: bool = True) -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports (with or without imports made only for typing)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = _targets(name, tree, path.name == "__init__.py", type_checking=type_checking)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _offending(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    """`importer -> imported` for every module under `importer` that imports one of `forbidden`."""
    return sorted(
        f"{src} -> {dst}"
        for src, dsts in _imports().items()
        if _is_in(src, importer)
        for dst in dsts
        if any(_is_in(dst, pkg) for pkg in forbidden)
    )


def test_the_import_scanner_sees_imports_inside_functions() -> None:
    # the `hitl demo` command imports the sandbox only when it runs
    assert "sandbox.demo.runner" in _imports(type_checking=False)["bot.app.commands.demo"]


def test_no_module_takes_part_in_an_import_cycle() -> None:
    # Imports under `if TYPE_CHECKING:` never run, so they are left out: a typed seam such as
    # `Runtime.services.outbox: OutboxWorker` may name a type whose module needs the runtime.
    assert _cycles(_imports(type_checking=False)) == []


def test_the_cycle_check_would_catch_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_only_the_composition_root_in_bot_imports_handlers_or_the_sandbox() -> None:
    offending = [
        line
        for line in _offending("bot", ("handlers", "sandbox"))
        if not _is_in(line.split(" -> ")[0], COMPOSITION_ROOT)
    ]
    assert offending == []


def test_storage_imports_nothing_from_bot_handlers_or_the_sandbox() -> None:
    assert _offending("storage", ("bot", "handlers", "sandbox")) == []


def _uses_import_module(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "import_module":
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "importlib"
            and any(alias.name == "import_module" for alias in node.names)
        ):
            return True
    return False


def test_the_core_and_the_edge_import_modules_by_name_not_by_string() -> None:
    users = sorted(
        str(path.relative_to(ROOT))
        for name, path in _modules().items()
        if not _is_in(name, "sandbox") and _uses_import_module(ast.parse(path.read_text(encoding="utf-8")))
    )
    assert users == []
