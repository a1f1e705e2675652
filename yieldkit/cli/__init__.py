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
import os
import pkgutil
import re
import sys
import time
from collections.abc import Sequence

from .._version import __version__
from ..errors import YieldkitError, shorten

__all__ = ["build_parser", "main"]

log = logging.getLogger("yieldkit")


_EXAMPLES = {
    "summary": ("lot42.stdf", "dies.parquet --by lot --good-bins 1,2 -o lots.xlsx"),
    "convert": ("lot42.stdf -o lot42.parquet", "scan.klarf -o scan.csv"),
    "map": ("W01.xml", "dies.parquet --all -o maps/"),
    "report": ("dies.parquet --defects scan.klarf", "lot42.stdf --bin-names bins.json -o lot42.html"),
    "pareto": ("scan.klarf", "dies.parquet --by hbin -o bins.html"),
    "fit": ("counts.csv --area 0.5", "scan.klarf --dies dies.parquet -o fit.json"),
    "dppm": ("--yield 0.9 --coverage 0.99", "--fit fit.json --coverage 0.95 0.99"),
    "classify": ("dies.parquet", "dies.parquet -o patterns.csv --summary lots.csv"),
    "commonality": ("dies.parquet wafers.csv", "dies.parquet wafers.csv -o ranked.csv"),
    "simulate": ("fab/", "fab/ --lots 5 --d0 0.3 --seed 1"),
    "layout": ("W01.xml -o layout.json", "scan.klarf --wafer LOT1/07 -o layout.json"),
    "parametric": ("lot42.stdf -o capability.csv", "lot42.stdf --shift shifts.csv --report lot42.html"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yieldkit",
        description="Semiconductor yield and defect analytics.",
        epilog="examples:\n  yieldkit summary lot42.stdf\n  yieldkit report dies.parquet --defects scan.klarf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"yieldkit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show progress details (-v) and tracebacks of errors (-vv)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    for name, p in sub.choices.items():
        # every subcommand's --help ends with examples, its line breaks kept
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        if not p.epilog and name in _EXAMPLES:
            p.epilog = "examples:\n" + "\n".join(f"  yieldkit {name} {e}" for e in _EXAMPLES[name])
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.DEBUG if verbose > 1 else (logging.INFO if verbose else logging.WARNING)
    if quiet:
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(verbose > 1))
    handler.addFilter(_OncePerMessage())
    root = logging.getLogger("yieldkit")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # warnings (data quality, convergence) become one log line each instead of source excerpts
    logging.captureWarnings(True)
    pyw = logging.getLogger("py.warnings")
    pyw.handlers[:] = [_WarningHandler(handler)]
    pyw.setLevel(logging.ERROR if quiet else logging.WARNING)
    pyw.propagate = False


class _Formatter(logging.Formatter):
    """``warning: message`` in the user's words; ``-vv`` adds the logger name."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = user_message(record.getMessage())
        level = record.levelname.lower()
        if self.debug:
            return f"{level} {record.name}: {text}"
        return f"{level}: {text}" if record.levelno >= logging.WARNING else text


class _OncePerMessage(logging.Filter):
    """Drop a message already shown (the same warning for every wafer or every file)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _WarningHandler(logging.Handler):
    """Shortens 'path:line: Category: message' from the warnings module to 'message'."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__()
        self.inner = inner

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip().splitlines()[0]
        parts = text.split(": ", 1)
        if len(parts) == 2 and ":" in parts[0] and parts[0].rsplit(":", 1)[-1].isdigit():
            text = parts[1]
        parts = text.split(": ", 1)
        if len(parts) == 2 and re.fullmatch(r"\w*(Warning|Error)", parts[0]):
            text = parts[1]
        record = logging.makeLogRecord({**record.__dict__, "msg": text, "args": None})
        if self.inner.filter(record):
            self.inner.emit(record)


#: library argument names that reach the user through a command-line option of another name
_OPTIONS = {
    "yield_": "--yield", "dppm_target": "--target-dppm", "cluster_alpha": "--cluster-alpha", "n0": "--n0",
    "coverage": "--coverage", "area": "--area", "conf_level": "--conf-level", "good_bins": "--good-bins",
    "max_maps": "--max-maps", "top": "--top", "dpi": "--dpi",
}

_REWRITES = (
    # a reader's advice to the Python caller, said as the command-line option
    (re.compile(r"([Pp])ass on_error=.salvage.( to)?"),
     lambda m: ("R" if m.group(1) == "P" else "r") + "erun with --salvage" + (" to" if m.group(2) else "")),
    (re.compile(r"on_error=.salvage."), "--salvage"),
    # the Python-only remedy of a column-name mismatch
    (re.compile(r"\s*[Pp]ass (an explicit )?columns=(\{[^}]*\} )?(mapping )?to map them explicitly\.?"),
     " Rename the columns in the file to one of these names."),
    (re.compile(r"pass an explicit columns= mapping"), "rename one of them in the file"),
    # "The 'yield_' argument of dppm_table" -> "--yield"
    (re.compile(r"[Tt]he '(\w+)' argument of [\w.]+"), lambda m: _OPTIONS.get(m.group(1), m.group(0))),
    # numpy scalars shown as reprs
    (re.compile(r"np\.(?:float|int|uint|bool)\w*\(([^()]*)\)"), r"\1"),
)


def user_message(text: str) -> str:
    """A library message in command-line words (options instead of arguments, plain numbers)."""
    for pattern, repl in _REWRITES:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    return shorten(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 1 bad input, 2 usage).

    Called without ``argv`` (as the ``yieldkit`` program) it ends the process itself once the
    output is flushed, see :func:`_exit`.
    """
    if argv is None:
        try:
            code = _main(None)
        except SystemExit as exc:  # --help, --version, a usage error
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        _exit(code)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started  # wall-clock start, for the times a command reports
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate)
             for lg in (logging.getLogger("yieldkit"), logging.getLogger("py.warnings"))]
    _configure_logging(args.verbose, args.quiet)
    try:
        return _run(args)
    finally:
        logging.captureWarnings(False)
        for lg, handlers, level, propagate in saved:  # main() run in-process leaves logging as it was
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def _exit(code: int) -> None:
    """Flush everything and end the process without running interpreter shutdown.

    pyarrow's thread pools are torn down by C++ static destructors at interpreter exit; when
    a worker thread is still alive then, the runtime aborts ("terminate called without an
    active exception", exit status 134) after yieldkit has already finished and reported. All
    output is written, flushed (and, for files, renamed into place) before this point, so
    nothing is lost by leaving with ``os._exit``.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (yieldkit ... | head)
            code = code or 1
    os._exit(code)


def _error(args: argparse.Namespace, exc: BaseException, text: str) -> int:
    if args.verbose > 1:
        log.exception("failed")
    print(f"yieldkit: error: {user_message(text)}", file=sys.stderr)
    return 1


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except YieldkitError as exc:
        return _error(args, exc, str(exc))
    except OSError as exc:
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc)
        return _error(args, exc, f"{where}: {what.lower()}" if where else what)
    except (ValueError, TypeError, KeyError) as exc:
        return _error(args, exc, str(exc).strip("'\"") or type(exc).__name__)
    except MemoryError:
        return _error(args, MemoryError(), "out of memory: the input is too large for this machine")
    except KeyboardInterrupt:
        print("yieldkit: interrupted", file=sys.stderr)
        return 130
