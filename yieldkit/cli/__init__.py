"""The ``yieldkit`` command line.

The CLI is thin: it parses arguments, calls the public API and writes files. Each
subcommand lives in its own module in this package (``summary``, ``simulate``, ``fit``,
``map``, ``report``, ...) and exposes ``register(subparsers)``, which adds its parser and
sets ``func`` to a callable ``(args) -> int``. Modules are discovered at start-up, so a new
command is a new file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import YieldkitError

__all__ = ["build_parser", "main"]

log = logging.getLogger("yieldkit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yieldkit",
        description="Semiconductor yield and defect analytics.",
    )
    parser.add_argument("--version", action="version", version=f"yieldkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show details and tracebacks of errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("yieldkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # warnings (data quality, convergence) become one log line each instead of source excerpts
    logging.captureWarnings(True)
    pyw = logging.getLogger("py.warnings")
    pyw.handlers[:] = [_WarningHandler(handler)]
    pyw.setLevel(logging.WARNING)
    pyw.propagate = False


class _WarningHandler(logging.Handler):
    """Shortens 'path:line: Category: message' from the warnings module to 'Category: message'."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__()
        self.inner = inner

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip().splitlines()[0]
        parts = text.split(": ", 1)
        if len(parts) == 2 and ":" in parts[0] and parts[0].rsplit(":", 1)[-1].isdigit():
            text = parts[1]
        record = logging.makeLogRecord({**record.__dict__, "msg": text, "args": None})
        self.inner.emit(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 1 bad input, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        return _run(args)
    finally:
        logging.captureWarnings(False)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except YieldkitError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"yieldkit: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        if args.verbose:
            log.exception("failed")
        print(f"yieldkit: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("yieldkit: interrupted", file=sys.stderr)
        return 130
