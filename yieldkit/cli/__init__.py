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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 1 bad input, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
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
