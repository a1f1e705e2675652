"""Helpers shared by the CLI subcommands: loading inputs and writing tables."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import YieldkitValueError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("yieldkit.cli")

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
    import pandas as pd

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
    """Print a table to stdout, or write it atomically to ``output``.

    The format is ``fmt`` (--format); with the default ``"table"`` an output name ending in
    .csv or .json picks that format, and .xlsx writes an Excel workbook (needs openpyxl, the
    ``excel`` extra).
    """
    if output:
        ext = Path(output).suffix.lower()
        if ext in (".xlsx", ".xls", ".xlsm"):
            write_excel(df, output)
            log.info("wrote %s", output)
            return
        if fmt == "table" and ext in (".csv", ".json"):
            fmt = ext[1:]
        write_text(output, render_table(df, fmt))
        log.info("wrote %s", output)
    else:
        sys.stdout.write(render_table(df, fmt))


def write_excel(df: pd.DataFrame, path: str | Path) -> None:
    """Write one sheet of ``df`` to an .xlsx workbook atomically."""
    if Path(path).suffix.lower() != ".xlsx":
        raise YieldkitValueError(f"{path}: yieldkit writes Excel as .xlsx; choose a name ending in .xlsx")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise YieldkitValueError(f"{path}: writing Excel needs openpyxl (pip install 'yieldkit[excel]'); "
                                 "or write .csv, which Excel opens") from None
    from ..io.atomic import atomic_path

    with atomic_path(path, suffix=".xlsx") as tmp:
        df.to_excel(tmp, index=False, engine="openpyxl")


def write_text(path: str | Path, text: str) -> None:
    from ..io.atomic import atomic_write  # importing yieldkit.io loads pandas: not for --help

    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def non_negative_int(text: str) -> int:
    """argparse type of a count that may be 0 but not negative (``--max-maps``)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0; got {text!r}")
    return value


def add_salvage_argument(parser: Any) -> None:
    parser.add_argument("--salvage", action="store_true",
                        help="read what is complete in a file cut short (STDF, KLARF, CSV) instead of stopping")


def on_error(args: Any) -> str:
    """The readers' ``on_error`` for ``--salvage``."""
    return "salvage" if getattr(args, "salvage", False) else "raise"


def default_output(source: str | Path, suffix: str) -> Path:
    """The output next to ``source``: its name without extensions plus ``suffix``."""
    src = Path(source)
    name = src.name
    for ext in (".gz", ".bz2", ".zip"):
        name = name.removesuffix(ext)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    out = src.parent / f"{stem}{suffix}"
    if out.resolve() == src.resolve():
        raise YieldkitValueError(f"the default output {out} would overwrite the input; give -o")
    return out


def load_json(path: str | Path, what: str) -> Any:
    """A JSON file given on the command line, with the file and the line of a syntax error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        from ..errors import InputNotFoundError

        raise InputNotFoundError(f"{p}: no such file ({what})") from None
    except UnicodeDecodeError:
        raise YieldkitValueError(f"{p}: not a text file ({what} must be JSON)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        from ..errors import ParseError

        raise ParseError(f"not valid JSON ({what}): {exc.msg} at column {exc.colno}", path=p, line=exc.lineno) from None


def load_layout(path: str | Path) -> Any:
    """A wafer layout JSON (as ``yieldkit simulate`` writes it)."""
    from ..layout import WaferLayout

    data = load_json(path, "--layout")
    try:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return WaferLayout.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, YieldkitValueError):
            raise YieldkitValueError(f"{path}: {exc}") from None
        raise YieldkitValueError(f"{path}: not a wafer layout ({exc}); expected an object such as "
                                 '{"diameter_mm": 300, "die_pitch_um": [10000, 10000]}') from None


def load_bin_names(path: str | Path) -> dict[int, str]:
    """A JSON object mapping hard bin numbers to names."""
    data = load_json(path, "--bin-names")
    try:
        if not isinstance(data, dict):
            raise TypeError
        return {int(k): str(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise YieldkitValueError(f'{path}: --bin-names must be a JSON object such as {{"1": "pass", "7": "open"}} '
                                 "mapping hard bin numbers to names") from None


@contextmanager
def stages(args: Any, names: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A progress bar over the named stages of a command, on a terminal only.

    ``with stages(args, ["read", "analyse", "write"]) as step: step("read") ...``
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names), disable=not progress_enabled(args), leave=False, unit="step",
               bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}]")
    started = [False]

    def step(name: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_description_str(name)

    try:
        yield step
    finally:
        bar.close()


def progress_enabled(args: Any) -> bool:
    """Progress bars only on a terminal and without --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()
