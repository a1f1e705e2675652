"""The README's Python example runs as written (from the repository root, on data_samples/)."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README shows how to use yieldkit from Python"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for code in blocks:
                exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)


def test_readme_layout_table_names_every_module():
    """Every top-level module and subpackage of yieldkit has a row in the package-layout table,
    and every ``yieldkit.x`` the table names exists."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("## Package layout"):].split("\n## ", 1)[0]
    named = set(re.findall(r"`yieldkit\.(_?[a-z_]+)`", table))
    package = REPO / "yieldkit"
    tree = {p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__", "_version")}
    tree |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert tree - named == set(), "modules without a row in the README's package layout"
    assert named - tree == set(), "rows of the README's package layout naming no module"
