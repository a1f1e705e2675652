"""Helpers shared by the CLI subcommands: loading inputs and writing tables."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import YieldkitValueError
from ..io.atomic import atomic_write

__all__ = ["add_format_argument", "emit_table", "progress_enabled", "write_text"]


def bin_list(text: str) -> tuple[int, ...]:
    """argparse type of ``--good-bins``: comma-separated hard bin numbers such as ``1,2``."""
    import argparse

    try:
        bins = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        bins = ()
    if not bins or min(bins) < 0:
        raise argparse.ArgumentTypeError(f"expected hard bin numbers separated by commas, such as 1,2; got {text!r}")
    return bins


def add_format_argument(parser: Any, default: str = "table") -> None:
    parser.add_argument("--format", choices=("table", "csv", "json"), default=default, help="output format")


def render_table(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue()
    if fmt == "json":
        return df.to_json(orient="records", indent=2, double_precision=10) + "\n"
    if fmt == "table":
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
            return df.to_string(index=False) + "\n"
    raise YieldkitValueError(f"unknown format {fmt!r}; choose table, csv or json")


def emit_table(df: pd.DataFrame, fmt: str, output: str | None = None) -> None:
    """Print a table to stdout, or write it atomically to ``output`` (format from --format)."""
    text = render_table(df, fmt)
    if output:
        write_text(output, text)
    else:
        sys.stdout.write(text)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def progress_enabled(args: Any) -> bool:
    """Progress bars only on a terminal and without --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()
