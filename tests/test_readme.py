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
