"""KLARF raw statements: the raw wafer records both syntaxes produce, and defect-list blocks.

The parsers (:mod:`.parse12` for the 1.1/1.2 statement syntax, :mod:`.parse18` for 1.8
Record blocks) know nothing about the canonical tables; they return :class:`RawWafer`
objects (header values as strings, defect columns as Arrow arrays) that :mod:`.reader`
turns into the canonical defect, wafer and layout objects.

Defect lists are tokenised as a whole (pyarrow's whitespace split and cast, in C), not row
by row; only files whose defect rows hold quoted strings or 1.8 image lists fall back to a
regular-expression tokeniser.

The text is read through a :class:`TextStream`, a window over the decoded file that the
parsers move along: the whole text at once, or chunk by chunk (:func:`text_chunks`), in which
case defect lists are parsed piece by piece (:func:`stream_rows`) and only the typed columns
stay in memory, never the text.
"""

from __future__ import annotations

import codecs
import gzip
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ...errors import ParseError

log = logging.getLogger(__name__)

__all__ = ["RawFile", "RawWafer", "Statement", "TextStream", "parse_block", "release_unused", "stream_rows",
           "text_chunks", "unify_numbers"]

_NA_VALUES = ("NA", "N/A", "NaN", "nan", "NAN")

#: A header value: the tokens after the keyword (quotes removed) and the line of the keyword.
Statement = tuple[str, list[str], int]


@dataclass
class RawWafer:
    """One wafer as found in the file, before conversion to canonical tables."""

    wafer_id: str
    line: int
    header: dict[str, Statement] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    chunks: list[dict[str, pa.Array]] = field(default_factory=list)
    chunk_lines: list[np.ndarray] = field(default_factory=list)
    tests: list[tuple[int, np.ndarray, float | None]] = field(default_factory=list)
    class_lookup: dict[int, str] = field(default_factory=dict)
    has_defect_list: bool = False
    closed: bool = False
    #: file line of the DefectRecordSpec / Columns naming the defect columns
    spec_line: int | None = None
    #: the wafer's own totals (SummaryList / TestSummaryList): column -> values as text, and the line
    summary: list[tuple[dict[str, list[str]], int]] = field(default_factory=list)


@dataclass
class RawFile:
    """A parsed KLARF file: version, file-level header and wafers."""

    version: str
    header: dict[str, Statement]
    wafers: list[RawWafer]
    class_lookup: dict[int, str]
    #: what the parse found questionable (DataQualityWarning messages, emitted by the reader)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Defect-list blocks
# ---------------------------------------------------------------------------------------
def _split_tokens(block: str) -> tuple[pa.Array, np.ndarray]:
    """Whitespace tokens of a block and the number of tokens on each of its lines."""
    data = block.encode("utf-8")
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    offsets = np.concatenate([[0], nl + 1, [len(data)]]).astype(np.int64)
    raw_lines = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    lines = pc.ascii_trim_whitespace(raw_lines)
    empty = pc.equal(pc.binary_length(lines), 0).to_numpy(zero_copy_only=False)
    parts = pc.ascii_split_whitespace(lines)
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
    counts[empty] = 0
    tokens = pc.list_flatten(parts)
    if empty.any():
        tokens = tokens.filter(pc.not_equal(tokens, ""))
    return tokens, counts


_QUOTED_TOKEN = re.compile(r'"([^"]*)"|([^\s"]+)')


def _regex_tokens(block: str, path: Any, first_line: int, record: str) -> tuple[pa.Array, np.ndarray]:
    """Tokens of a block holding quoted strings (slow path), with per-line counts."""
    toks: list[str] = []
    counts = []
    for k, line in enumerate(block.split("\n")):
        n0 = len(toks)
        pos = 0
        stripped = line.rstrip()
        while pos < len(stripped):
            m = _QUOTED_TOKEN.search(stripped, pos)
            if m is None:
                break
            if stripped[pos : m.start()].strip():
                raise ParseError("unterminated quoted string", path=path, line=first_line + k, record=record)
            toks.append(m.group(1) if m.group(1) is not None else m.group(2))
            pos = m.end()
        if stripped[pos:].strip():
            raise ParseError("unterminated quoted string", path=path, line=first_line + k, record=record)
        counts.append(len(toks) - n0)
    return pa.array(toks, type=pa.large_string()), np.asarray(counts, dtype=np.int64)


def _row_starts(
    tokens: pa.Array, ncols: int, imagelist: int | None, path: Any, token_line: np.ndarray, record: str
) -> np.ndarray:
    """Index of the first token of every row.

    ``imagelist`` is the position of a variable-length IMAGELIST column (its first token is
    a count ``n`` followed by ``2n`` tokens), or None for fixed-width rows.
    """
    ntok = len(tokens)
    if imagelist is None:
        nrows = ntok // ncols
        if nrows * ncols != ntok:
            start = nrows * ncols
            raise ParseError(
                f"the defect list ends inside a record: its last record has {ntok - start} value(s) "
                f"where the record spec has {ncols} columns (rows do not match the record spec)",
                path=path,
                line=int(token_line[start]),
                record=record,
            )
        return np.arange(nrows, dtype=np.int64) * ncols
    counts_tok = tokens
    # fast path: every IMAGELIST has the same count as the first one
    if ntok == 0:
        return np.zeros(0, np.int64)
    try:
        n0 = int(counts_tok[imagelist].as_py()) if ntok > imagelist else 0
    except (TypeError, ValueError):
        n0 = -1
    if n0 >= 0:
        width = ncols + 2 * n0
        if ntok % width == 0:
            starts = np.arange(ntok // width, dtype=np.int64) * width
            col = counts_tok.take(pa.array(starts + imagelist))
            try:
                if pc.all(pc.equal(pc.cast(col, pa.int64()), n0)).as_py():
                    return starts
            except pa.ArrowInvalid:
                pass
    # general path: walk the rows (one step per row, vectorised decoding of the counts)
    try:
        nimg = pc.cast(tokens, pa.float64(), safe=False)
    except pa.ArrowInvalid:
        nimg = None
    starts_list: list[int] = []
    i = 0
    while i < ntok:
        starts_list.append(i)
        k = i + imagelist
        if k >= ntok:
            break
        try:
            n = float(nimg[k].as_py()) if nimg is not None else float(tokens[k].as_py())
        except (TypeError, ValueError):
            n = float("nan")
        if not (n >= 0 and n == int(n)):
            raise ParseError(
                f"the IMAGELIST count of a defect record is {tokens[k].as_py()!r}, not a non-negative integer "
                "(rows do not match the record spec)",
                path=path,
                line=int(token_line[k]),
                record=record,
            )
        i += ncols + 2 * int(n)
    last = starts_list[-1] if starts_list else 0
    if i > ntok or (starts_list and last + imagelist >= ntok):
        raise ParseError(
            f"the defect list ends inside a record: its last record has {ntok - last} value(s) for a "
            f"record spec of {ncols} columns (rows do not match the record spec)",
            path=path,
            line=int(token_line[last]),
            record=record,
        )
    return np.asarray(starts_list, dtype=np.int64)


_FAST_TYPES = (pa.types.is_int64, pa.types.is_float64, pa.types.is_string, pa.types.is_large_string)


def _without_blank_tail(block: str) -> str:
    """A block without a last line of blanks (the indentation before a 1.8 list's ``}``)."""
    last = block.rfind("\n") + 1
    return block[:last] if last and not block[last:].strip(" \t\r") else block


def _csv_block(block: str, columns: list[str], first_line: int) -> tuple[dict[str, pa.Array], np.ndarray, int] | None:
    """Fast path: one record per line, values separated by single spaces (what tools and
    :func:`write_klarf` write). Parsed by Arrow's multi-threaded CSV reader with type
    inference; None when the block does not have that shape (the token path handles it).
    Returns the columns, the file line of each row and the number of fields per line."""
    block = _without_blank_tail(block)
    data = block.encode("utf-8")
    if not data.strip():
        return None
    try:
        tbl = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 24, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=" ", quote_char=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(timestamp_parsers=[], null_values=["", *_NA_VALUES],
                                                 strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    keep = [c for c in tbl.column_names if not pa.types.is_null(tbl.schema.field(c).type)]
    if len(keep) != len(columns):
        return None
    for c in keep:
        # numbers beyond the float range, or integers too large to be exact as a float: the
        # token path keeps their text (and reports what cannot be held)
        if pa.types.is_floating(tbl.schema.field(c).type):
            f = tbl.column(c).to_numpy()
            if (np.isinf(f) | ((np.abs(f) >= 2.0**53) & (f == np.round(f)))).any():
                return None
    if any(not any(t(tbl.schema.field(c).type) for t in _FAST_TYPES) for c in keep):
        return None
    # null columns are the empty fields of leading/trailing/double spaces: they must be null
    # in every row, or the rows are not regular
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(data)]])
    ends = ends - ((ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13))
    nonempty = ends > starts
    if int(nonempty.sum()) != tbl.num_rows:
        return None
    row_lines = first_line + np.flatnonzero(nonempty).astype(np.int64)
    if len(row_lines) and row_lines[-1] < 2**31:  # kept until the wafer is converted: 4 bytes a row
        row_lines = row_lines.astype(np.int32)
    out = {name: _int32_if_fits(tbl.column(c).combine_chunks()) for name, c in zip(columns, keep)}
    return out, row_lines, tbl.num_columns


def _int32_if_fits(a: pa.Array) -> pa.Array:
    """An int64 column as int32 when every value fits (KLARF's integer fields are 32-bit), so
    that the parsed lists held until their wafer is converted take half the memory."""
    if a.type != pa.int64() or not len(a):
        return a
    low, high = pc.min_max(a).values()
    if low.is_valid and -(2**31) <= low.as_py() and high.as_py() < 2**31:
        return a.cast(pa.int32())
    return a


_NUMERIC = frozenset({pa.int32(), pa.int64(), pa.float64()})


def unify_numbers(arrays: list[pa.Array]) -> list[pa.Array] | None:
    """Numeric arrays of one column cast to one type, as one parse of all their rows infers it:
    float64 if any is, else int64 (int32 when all are); None when an integer is too large to
    be exact as a float. Arrays of one type, or not all numeric, are returned as they are."""
    kinds = {a.type for a in arrays}
    if len(kinds) < 2 or not kinds <= _NUMERIC:
        return arrays
    target = pa.float64() if pa.float64() in kinds else pa.int64()
    out = []
    for a in arrays:
        if a.type == pa.int64() and target == pa.float64() and len(a):
            low, high = pc.min_max(a).values()
            if low.is_valid and (low.as_py() <= -(2**53) or high.as_py() >= 2**53):
                return None
        out.append(a if a.type == target else a.cast(target))
    return out


def parse_block(
    block: str,
    columns: list[str],
    *,
    path: Any,
    first_line: int,
    record: str = "DefectList",
    imagelist: bool = True,
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Parse the rows of a defect (or other) list into one Arrow string array per column.

    Parameters
    ----------
    block : str
        The text between the list keyword (or ``{``) and its terminator, without the
        terminator. Row separators ``;`` (KLARF 1.8) must already be removed.
    columns : list of str
        Column names (upper case) from DefectRecordSpec / Columns.
    first_line : int
        File line of the first character of ``block`` (1-based).
    imagelist : bool
        Treat an ``IMAGELIST`` column as variable length (KLARF 1.1/1.2).

    Returns
    -------
    (dict, ndarray)
        Column name -> string tokens, and the file line where each row starts.
    """
    ncols = len(columns)
    if ncols and '"' not in block and not (imagelist and "IMAGELIST" in columns):
        fast = _csv_block(block, columns, first_line)
        if fast is not None:
            return fast[0], fast[1]
    if '"' in block:
        tokens, counts = _regex_tokens(block, path, first_line, record)
    else:
        tokens, counts = _split_tokens(block)
    token_line = np.repeat(np.arange(first_line, first_line + len(counts), dtype=np.int64), counts)
    if ncols == 0:
        if len(tokens):
            raise ParseError("defect rows found but the record spec names no columns", path=path,
                             line=int(token_line[0]), record=record)
        return {}, np.zeros(0, np.int64)
    img = None
    if imagelist and "IMAGELIST" in columns:
        img = columns.index("IMAGELIST")
    starts = _row_starts(tokens, ncols, img, path, token_line, record)
    # every record starts on a new line: a record that starts mid-line means the rows do not
    # match the spec even when the total count happens to divide evenly
    if len(starts):
        line_first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        at_line_start = np.zeros(len(tokens) + 1, bool)
        at_line_start[line_first[counts > 0]] = True
        bad = ~at_line_start[starts]
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ParseError(
                f"defect record {k + 1} starts in the middle of a line: the rows do not match the "
                f"{ncols}-column record spec ({', '.join(columns)})",
                path=path,
                line=int(token_line[starts[k]]),
                record=record,
            )
    out: dict[str, pa.Array] = {}
    if img is None:
        for c, name in enumerate(columns):
            out[name] = tokens.take(pa.array(starts + c)) if len(starts) else pa.array([], pa.large_string())
    else:
        n_img = pc.cast(tokens.take(pa.array(starts + img)), pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        n_img = n_img.astype(np.int64)
        for c, name in enumerate(columns):
            if c < img:
                out[name] = tokens.take(pa.array(starts + c))
            elif c == img:
                lens = 1 + 2 * n_img
                idx = np.repeat(starts + img, lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
                offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
                lists = pa.LargeListArray.from_arrays(pa.array(offsets), tokens.take(pa.array(idx)))
                out[name] = pc.binary_join(lists, pa.scalar(" ", pa.large_string()))
            else:
                out[name] = tokens.take(pa.array(starts + c + 2 * n_img))
    return out, token_line[starts] if len(starts) else np.zeros(0, np.int64)


# ---------------------------------------------------------------------------------------
# The text, whole or in chunks
# ---------------------------------------------------------------------------------------
class Restart(Exception):
    """The chunked parse cannot promise the whole-text result here (a defect list the fast
    path does not take, or whose pieces disagree on a column type): parse the whole text."""


class NotUtf8(Exception):
    """The file is not UTF-8: read it again as Latin-1."""


def text_chunks(path: Path, chunk_size: int, encoding: str) -> Iterator[str]:
    """The decoded text of a KLARF file (gzip-compressed or not), ``chunk_size`` bytes at a time.

    A NUL byte is a :class:`ParseError` naming its (decompressed) offset; text that is not
    valid in ``encoding`` raises :class:`NotUtf8`.
    """
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
    except IsADirectoryError:
        raise ParseError("is a directory, not a KLARF file", path=path) from None
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
        while True:
            try:
                raw = fh.read(chunk_size)
            except (OSError, EOFError) as exc:
                raise ParseError(f"cannot decompress: {exc}", path=path) from exc
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise ParseError("binary content (NUL byte) in a KLARF text file", path=path, offset=offset + nul)
            offset += len(raw)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise NotUtf8 from None
            if text:
                yield text
            if not raw:
                return


class TextStream:
    """A window over a KLARF text that the parsers move along.

    ``text`` holds the text from absolute character ``start`` on; positions the parsers keep
    are relative to it. Built on the whole text (``eof`` from the start: the window never
    moves) or on chunks, when :meth:`match` reads on as a token reaches the end of the window
    and drops the text before the parser's position.
    """

    def __init__(self, text: str = "", chunks: Iterator[str] | None = None) -> None:
        self.text = text
        self.start = 0
        self.eof = chunks is None
        self._chunks = chunks
        self._line0 = 1
        self._lpos = 0
        self._lline = 1

    def fill(self) -> bool:
        """Append the next chunk; False at the end of the file."""
        if self._chunks is not None:
            for chunk in self._chunks:
                self.text += chunk
                return True
        self.eof = True
        return False

    def fill_all(self) -> None:
        """Read the rest of the file into the window."""
        if not self.eof and self._chunks is not None:
            self.text = "".join([self.text, *self._chunks])
        self.eof = True

    def compact(self, pos: int) -> int:
        """Drop the text before ``pos``; returns the new position of that character (0)."""
        if pos <= 0:
            return pos
        line = self.line_at(pos)
        self.text = self.text[pos:]
        self.start += pos
        self._line0 = self._lline = line
        self._lpos = 0
        return 0

    def line_at(self, pos: int) -> int:
        """File line (1-based) of the character at window position ``pos``."""
        if pos < self._lpos:
            self._lpos, self._lline = 0, self._line0
        self._lline += self.text.count("\n", self._lpos, pos)
        self._lpos = pos
        return self._lline

    def match(self, rx: re.Pattern[str], pos: int) -> tuple[re.Match[str] | None, int]:
        """``rx.match`` at ``pos``, reading on while the match is absent or reaches the end of the
        window; returns the match and ``pos`` in the (possibly moved) window."""
        while True:
            m = rx.match(self.text, pos)
            if self.eof or (m is not None and m.end() < len(self.text)):
                return m, pos
            pos = self.compact(pos)
            self.fill()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


_LIBC: Any = None


def release_unused() -> None:
    """Hand memory freed by Arrow and by malloc back to the system (on glibc: ``malloc_trim``),
    so that the peak of a streaming parse is what it holds, not what it once held."""
    global _LIBC
    pa.default_memory_pool().release_unused()
    if _LIBC is None:
        _LIBC = False
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            _LIBC = libc if hasattr(libc, "malloc_trim") else False
        except OSError:
            pass
    if _LIBC:
        _LIBC.malloc_trim(0)


#: one piece of a defect list: its columns, the line of each row, the fields per line
Piece = tuple[dict[str, pa.Array], np.ndarray, int]


def _same_kind(a: pa.DataType, b: pa.DataType) -> bool:
    """Column types that pieces of one list may have: equal, or numbers (a piece whose numbers
    all look like integers, or all fit 32 bits), which the whole list holds in one type."""
    return a == b or {a, b} <= _NUMERIC


def _one_type_per_column(pieces: list[Piece], columns: list[str]) -> list[Piece]:
    """The pieces with each column in one type (:func:`unify_numbers`), as one parse of the whole
    list infers it; :class:`Restart` when an integer is too large to be exact as a float."""
    for c in columns:
        arrays = unify_numbers([p[0][c] for p in pieces])
        if arrays is None:
            raise Restart("integers too large for a float in a column of floats")
        for p, a in zip(pieces, arrays):
            p[0][c] = a
    return pieces


def stream_rows(s: TextStream, pos: int, columns: list[str], *, end: str, forbidden: str,
                semicolons: bool = False) -> tuple[list[Piece] | None, int, int]:
    """The rows of a list read piece by piece (whole lines) up to its terminator ``end``.

    Each piece goes through the fast path of :func:`parse_block`; the text of a piece is
    dropped once parsed. Returns the pieces, the window position of the terminator and the
    number of ``;`` met (which are blanked first when ``semicolons``); or None, the window
    position of the list's start and 0 when a character of ``forbidden`` (quoted text) comes
    before any row was read: the caller then parses the list whole. Raises :class:`Restart`
    when the whole-text parse could give something else: a character of ``forbidden`` after
    rows were read, a piece the fast path does not take, pieces whose column types or widths
    differ, a list without its terminator.
    """
    pieces: list[Piece] = []
    nsemi = 0
    consumed = False
    while True:
        stop = s.text.find(end, pos)
        seg_end = stop if stop >= 0 else len(s.text)
        if any(s.text.find(c, pos, seg_end) >= 0 for c in forbidden):
            if not consumed:
                return None, pos, 0
            raise Restart("a quoted string or a brace inside a list")
        if stop >= 0:
            cut = stop
        elif s.eof:
            raise Restart("a list without its terminator")
        else:
            nl = s.text.rfind("\n", pos)
            if nl < pos:
                pos = s.compact(pos)
                s.fill()
                continue
            cut = nl + 1
        piece = s.text[pos:cut]
        if semicolons:
            nsemi += piece.count(";")
            piece = piece.replace(";", " ")
        if stop >= 0:  # the last line of the list, when blank, is not a row
            piece = _without_blank_tail(piece) if "\n" in piece else piece if piece.strip(" \t\r") else ""
        if piece.strip("\r\n"):
            # Arrow infers the columns from a first line that ends; the line end changes nothing else
            fast = _csv_block(piece if piece.endswith("\n") else piece + "\n", columns, s.line_at(pos))
            if fast is None:
                raise Restart("a piece of a list the fast path does not take")
            if pieces and (fast[2] != pieces[0][2] or any(not _same_kind(fast[0][c].type, pieces[0][0][c].type)
                                                          for c in columns)):
                raise Restart("the pieces of a list differ in column types")
            pieces.append(fast)
            release_unused()  # what the CSV reader held for the piece
        pos = cut
        consumed = True
        if stop >= 0:
            return _one_type_per_column(pieces, columns), pos, nsemi
        pos = s.compact(pos)
        s.fill()
