"""List the import cycles among the modules of a package (default: comllm).

    python scripts/import_cycles.py [--package comllm] [--lazy]

Reads the sources (nothing is imported), builds the graph "module A imports module B"
from ``import`` / ``from ... import`` statements at module level (with ``--lazy`` also
those inside functions), and prints every strongly connected component of more than
one module with one cycle through it, and every library module that imports the
command line (``PACKAGE.cli``). ``from pkg import name`` counts as importing
``pkg.name`` when that is a module, else ``pkg``; importing ``a.b.c`` also imports the
packages ``a`` and ``a.b`` (their ``__init__`` runs first). Imports under
``if TYPE_CHECKING:`` are skipped (they never run). Exit code 1 if there is a cycle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``: dotted name -> file."""
    out = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: dict[str, Path], lazy: bool) -> set[str]:
    """The package modules that module ``name`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(base: str) -> str | None:
        while base and base not in modules:
            base = base.rpartition(".")[0]
        return base or None

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (top or lazy):
                for alias in child.names:
                    m = resolve(alias.name)
                    if m:
                        found.add(m)
            elif isinstance(child, ast.ImportFrom) and (top or lazy):
                if child.level:
                    pkg = name if is_pkg else name.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{child.module}" if child.module else pkg
                else:
                    base = child.module or ""
                for alias in child.names:
                    m = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else resolve(base)
                    if m:
                        found.add(m)
            visit(child, inner)

    visit(tree, True)
    # importing a.b.c first runs the __init__ of a and a.b
    for m in list(found):
        parent = m.rpartition(".")[0]
        while parent in modules:
            found.add(parent)
            parent = parent.rpartition(".")[0]
    found.discard(name)
    own = name.rpartition(".")[0]
    while own:  # a module's own parent packages are already running when it is imported
        found.discard(own)
        own = own.rpartition(".")[0]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each as a cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return [_one_cycle(graph, c) for c in comps]


def _one_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside it)."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default="comllm")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--lazy", action="store_true", help="also count imports inside functions")
    args = ap.parse_args()
    modules = module_files(Path(args.root), args.package)
    graph = {m: imports_of(m, f, modules, args.lazy) for m, f in modules.items()}
    found = cycles(graph)
    kind = "module-level and lazy" if args.lazy else "module-level"
    cli = f"{args.package}.cli"
    upward = sorted(
        (m, c) for m, deps in graph.items() if not (m == cli or m.startswith(cli + ".") or m == f"{args.package}.__main__")
        for c in deps if c == cli or c.startswith(cli + ".")
    )  # fmt: skip
    for m, c in upward:
        print(f"library module {m} imports the command line ({c})")
    if not found:
        print(f"no import cycles among the {len(modules)} modules of {args.package} ({kind} imports)")
        return 1 if upward else 0
    print(f"{len(found)} import cycle(s) among the modules of {args.package} ({kind} imports):")
    for c in found:
        print("  " + " -> ".join(c))
    return 1


if __name__ == "__main__":
    sys.exit(main())
