"""List the package's functions longer than a limit, in code lines.

Code lines are the lines of the body after the docstring, without blank and comment-only lines.
A function well over ~100 lines is a candidate for splitting by phase.

Usage::

    .venv/bin/python scripts/long_functions.py [--limit 100] [PACKAGE_DIR]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]
    if not body:
        return 0
    lines = source[body[0].lineno - 1:node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def long_functions(package: Path, limit: int) -> list[tuple[int, str, str]]:
    rows = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(source), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = code_lines(node, source)
                if n > limit:
                    rows.append((n, f"{path}:{node.lineno}", node.name))
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "yieldkit"))
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    for n, where, name in long_functions(Path(args.package), args.limit):
        print(f"{n:5d}  {where}  {name}")


if __name__ == "__main__":
    main()
