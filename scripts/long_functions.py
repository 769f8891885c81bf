"""List the longest functions of a package (default: comllm), longest first.

    python scripts/long_functions.py [--package comllm] [--top 10] [--over 80]

Length = lines from the ``def`` to the function's last line, docstring included. Compiled
numba kernels (decorated ``@njit`` / ``@jit``) are marked: they may run long for speed,
which their docstrings explain. Exit code 1 if a function that is not a kernel is longer
than ``--over`` lines.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def functions(root: Path, package: str) -> list[tuple[int, str, bool]]:
    """(length, "path:qualified.name", is_numba_kernel) of every function of the package."""
    out = []
    for f in sorted((root / package).rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    decos = {ast.unparse(d).split("(")[0] for d in child.decorator_list}
                    kernel = bool(decos & {"njit", "jit", "numba.njit", "numba.jit"})
                    name = f"{prefix}{child.name}"
                    out.append((child.end_lineno - child.lineno + 1, f"{f.relative_to(root)}:{name}", kernel))
                    visit(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(tree, "")
    return sorted(out, reverse=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default="comllm")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--over", type=int, default=80)
    args = ap.parse_args()
    funcs = functions(Path(args.root), args.package)
    print("| lines | function | numba kernel |\n|---|---|---|")
    for n, name, kernel in funcs[: args.top]:
        print(f"| {n} | `{name}` | {'yes' if kernel else ''} |")
    long = [(n, name) for n, name, kernel in funcs if n > args.over and not kernel]
    if long:
        print(f"\n{len(long)} function(s) over {args.over} lines that are not numba kernels:")
        for n, name in long:
            print(f"  {n:4d}  {name}")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main())
