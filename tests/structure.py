"""The code's shape, as a newcomer meets it: import circles, files over 400 lines, functions over 80 lines.

Imports inside functions count as edges too (deferring an import hides a circle, it does not remove it); imports
under ``if TYPE_CHECKING:`` do not (they never run). Run ``python tests/structure.py`` to print every finding;
``tests/test_structure.py`` fails on any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "rlpipe"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``src`` by dotted name (a package by its own name)."""
    found = {}
    for path in (src / package).rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _runtime_imports(tree: ast.Module):
    """Import statements that run: everywhere but inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a module's own enclosing packages are not edges)."""
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for node in _runtime_imports(ast.parse(path.read_text())):
            for target in _targets(name, path, node):
                if target in found and target != name and not name.startswith(f"{target}."):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
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
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def long_files(found: dict[str, Path], limit: int = MAX_FILE_LINES) -> list[tuple[str, int]]:
    lines = {str(path.relative_to(SRC)): path.read_text().count("\n") for path in found.values()}
    return sorted((name, n) for name, n in lines.items() if n > limit)


def long_functions(found: dict[str, Path], limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    out = []
    for path in found.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append((f"{path.relative_to(SRC)}:{node.lineno} {node.name}", length))
    return sorted(out)


def findings() -> list[str]:
    found = modules()
    return ([f"import circle: {' <-> '.join(c)}" for c in circles(import_graph(found))]
            + [f"file over {MAX_FILE_LINES} lines: {name} ({n})" for name, n in long_files(found)]
            + [f"function over {MAX_FUNCTION_LINES} lines: {name} ({n})" for name, n in long_functions(found)])


if __name__ == "__main__":
    problems = findings()
    print("\n".join(problems) if problems else f"{len(modules())} modules: no import circle, no file over "
          f"{MAX_FILE_LINES} lines, no function over {MAX_FUNCTION_LINES} lines")
    sys.exit(1 if problems else 0)
