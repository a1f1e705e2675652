"""Atomic output: write to a temporary file beside the target, then rename over it.

A reader never sees a half-written file, and a failed write leaves the previous file (or
nothing) in place. The temporary file is named ``.<target name>.yk<pid>.<random><suffix>``: a
process killed mid-write (SIGKILL, SIGTERM, power loss) leaves one behind, and the next write
to the same target removes those whose writing process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

__all__ = ["atomic_dir", "atomic_path", "atomic_write"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    suffix = suffix if suffix is not None else ".tmp"
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file name", str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target, suffix)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.yk{os.getpid()}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        # name the file the user asked for, not the hidden temporary one
        raise type(exc)(exc.errno, f"cannot write there ({exc.strerror or exc})", str(target)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the permissions an ordinary open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


_TEMP = re.compile(r"\.(?P<name>.+)\.yk(?P<pid>\d+)\.[^.]+(?P<suffix>\..+)$")


def _remove_stale(target: Path, suffix: str) -> None:
    """Remove temporary files of ``target`` left by writers that no longer run."""
    try:
        candidates = list(target.parent.glob(f".{glob.escape(target.name)}.yk*{glob.escape(suffix)}"))
    except OSError:
        return
    for tmp in candidates:
        m = _TEMP.fullmatch(tmp.name)
        if m is None or m.group("name") != target.name or m.group("suffix") != suffix:
            continue
        pid = int(m.group("pid"))
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            log.info("removed %s, left by an interrupted write", tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; rename it to ``path`` when the block succeeds.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(p) as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` (a directory
    there before is removed only then). On an exception the temporary directory is removed
    and ``path`` is untouched."""
    import shutil

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.yk{os.getpid()}.", suffix=".tmpdir", dir=target.parent))
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write there ({exc.strerror or exc})", str(target)) from None
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.yk{os.getpid()}.old"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
