"""KLARF 1.1 / 1.2: the statement syntax (keyword, values, ';') into raw wafer records.

The parser walks the statements once; each phase has its method: reading one statement's
values, a DefectList block, a WaferID opening a wafer, ClassLookup, the sample test plans
and AreaPerTest, DefectRecordSpec, and the checks at the end of the file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from ...errors import ParseError
from .statements import RawFile, RawWafer, Statement, TextStream, parse_block, stream_rows

log = logging.getLogger(__name__)

__all__ = ["parse_12", "wafers_12"]

_TOK12 = re.compile(r'[ \t\r\n\f\v]*(?:"([^"]*)"|(;)|([^\s;"]+)|(\Z))')


#: statements that cannot come before FileVersion (header statements may, in any order)
_AFTER_VERSION = frozenset({"waferid", "defectrecordspec", "defectlist", "summaryspec", "summarylist",
                            "endoffile"})
_QUOTE_OR_END = re.compile(r'"[^"]*"|;')


def _list_end(text: str, pos: int) -> int:
    """Position of the ';' ending a list that starts at ``pos``, skipping quoted strings; -1 if none."""
    end = text.find(";", pos)
    if end < 0 or text.find('"', pos, end) < 0:
        return end
    for m in _QUOTE_OR_END.finditer(text, pos):
        if m.group() == ";":
            return m.start()
    return -1


def _int(values: list[str], k: int, path: Any, line: int, record: str, bits: int = 64) -> int:
    """Value ``k`` as an integer within the signed ``bits``-bit range."""
    try:
        v = int(values[k])
    except (IndexError, ValueError):
        raise ParseError(
            f"expected an integer as value {k + 1}, got {values[k] if k < len(values) else 'nothing'!r}",
            path=path, line=line, record=record,
        ) from None
    if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
        raise ParseError(f"value {k + 1}, {v}, is outside the {bits}-bit integer range of {record}", path=path,
                         line=line, record=record)
    return v


def _pairs(values: list[str], path: Any, line: int, record: str, declared: int | None,
           notes: list[str]) -> np.ndarray:
    if len(values) % 2:
        raise ParseError(f"expected pairs of die indices, got {len(values)} value(s)", path=path, line=line, record=record)
    try:
        arr = np.asarray([int(v) for v in values], dtype=np.int64).reshape(-1, 2)
    except ValueError as exc:
        raise ParseError(f"die indices must be integers: {exc}", path=path, line=line, record=record) from None
    except OverflowError:  # beyond int64
        arr = None
    if arr is None or (np.abs(arr) > 2**31 - 1).any():
        big = next(v for v in values if abs(int(v)) > 2**31 - 1)
        raise ParseError(f"die index {big} is outside the 32-bit range of die indices", path=path, line=line,
                         record=record)
    if declared is not None and declared != len(arr):
        notes.append(f"{path}, line {line}: {record} declares {declared} dies but lists {len(arr)}; using the "
                     f"{len(arr)} listed")
    return arr


class _Parser12:
    """State of one pass over a KLARF 1.1/1.2 text."""

    def __init__(self, text: str | TextStream, path: Any) -> None:
        self.s = text if isinstance(text, TextStream) else TextStream(text)
        self.path = path
        self.pos = 0
        self.notes: list[str] = []
        #: wafers complete (a later WaferID opened another), not yet handed out by iter_wafers
        self.ready: list[RawWafer] = []
        self.state: dict[str, Statement] = {}
        self.file_header: dict[str, Statement] = {}
        self.wafers: list[RawWafer] = []
        self.class_lookup: dict[int, str] = {}
        self.current: RawWafer | None = None
        self.test_no = 1
        self.version: str | None = None
        # SampleTestPlan / AreaPerTest before the first WaferID: the lot's plan, used by every wafer
        # that declares none of its own (KLARF statements hold until redefined)
        self.lot_tests: list[tuple[int, np.ndarray, float | None]] = []
        self.inherited = False  # the current wafer's tests are the lot's
        self.seen_eof = False

    def run(self) -> RawFile:
        for _ in self.iter_wafers():
            pass
        return self._finish()

    def iter_wafers(self) -> Iterator[RawWafer]:
        """Walk the statements, yielding each wafer once it is complete (the next WaferID or the
        end of the file); the checks at the end of the file are made by :meth:`_finish`."""
        s, path = self.s, self.path
        while True:
            m, self.pos = s.match(_TOK12, self.pos)
            if m is None:
                raise ParseError("unterminated quoted string", path=path, line=s.line_at(self.pos),
                                 record="statement")
            if m.group(4) is not None:
                break
            kw_pos = m.start(1) if m.group(1) is not None else (m.start(2) if m.group(2) is not None else m.start(3))
            if m.group(3) is None:
                if m.group(2) is not None:  # stray ';'
                    self.pos = m.end()
                    continue
                raise ParseError(f"expected a keyword, found the quoted string {m.group(1)!r}", path=path,
                                 line=s.line_at(kw_pos), record="statement")
            keyword = m.group(3)
            kw = keyword.lower()
            line = s.line_at(kw_pos)
            self.pos = m.end()
            if self.seen_eof:
                raise ParseError("content after EndOfFile", path=path, line=line, record=keyword)
            if self.version is None and kw in _AFTER_VERSION:
                raise ParseError(f"not a KLARF file: {keyword} before any FileVersion statement (expected "
                                 "FileVersion among the header statements)", path=path, line=line, record=keyword)
            if kw == "defectlist":
                self._defect_list(line)
                continue
            values = self._values(keyword, kw, line)
            self._statement(keyword, kw, values, line)
            while self.ready:
                yield self.ready.pop(0)
        if self.current is not None:
            self.current.closed = True
            yield self.current

    def _values(self, keyword: str, kw: str, line: int) -> list[str]:
        """The values of one statement, up to its ';'."""
        s, path = self.s, self.path
        values: list[str] = []
        while True:
            m, self.pos = s.match(_TOK12, self.pos)
            if m is None:
                raise ParseError("unterminated quoted string", path=path, line=s.line_at(self.pos), record=keyword)
            if m.group(4) is not None:
                if kw == "endoffile":
                    break
                raise ParseError(f"the {keyword} statement has no terminating ';' (truncated file?)",
                                 path=path, line=line, record=keyword)
            self.pos = m.end()
            if m.group(2) is not None:
                break
            values.append(m.group(1) if m.group(1) is not None else m.group(3))
        return values

    def _defect_list(self, line: int) -> None:
        s, path, current = self.s, self.path, self.current
        spec = self.state.get("defectrecordspec")
        if not s.eof and current is not None and spec is not None:
            columns = current.columns or [v.upper() for v in spec[1][1:]]
            if columns and "IMAGELIST" not in columns and self._stream_list(line, current, columns, spec):
                return
        while _list_end(s.text, self.pos) < 0 and s.fill():  # the whole list in the window
            pass
        end = _list_end(s.text, self.pos)
        if end < 0:
            raise ParseError("the DefectList has no terminating ';' (truncated file?)", path=path,
                             line=line, record="DefectList")
        if current is None:
            raise ParseError("DefectList before any WaferID", path=path, line=line, record="DefectList")
        if spec is None:
            raise ParseError("DefectList without a DefectRecordSpec", path=path, line=line, record="DefectList")
        if not current.columns:
            current.columns = [v.upper() for v in spec[1][1:]]
        if current.spec_line is None:
            current.spec_line = spec[2]
        block = s.text[self.pos:end]
        chunk, row_lines = parse_block(block, current.columns, path=path, first_line=line, record="DefectList")
        current.chunks.append(chunk)
        current.chunk_lines.append(row_lines)
        current.has_defect_list = True
        self.pos = end + 1

    def _stream_list(self, line: int, current: RawWafer, columns: list[str], spec: Statement) -> bool:
        """A DefectList read piece by piece (what :func:`parse_block` gives on the whole block);
        False when it is to be read whole (quoted text in its rows)."""
        pieces, end, _ = stream_rows(self.s, self.pos, columns, end=";", forbidden='"')
        if pieces is None:
            self.pos = end
            return False
        current.columns = columns
        if current.spec_line is None:
            current.spec_line = spec[2]
        if not pieces:
            current.chunks.append({c: pa.array([], pa.large_string()) for c in columns})
            current.chunk_lines.append(np.zeros(0, np.int64))
        for chunk, row_lines, _ in pieces:
            current.chunks.append(chunk)
            current.chunk_lines.append(row_lines)
        current.has_defect_list = True
        self.pos = end + 1
        return True

    def _statement(self, keyword: str, kw: str, values: list[str], line: int) -> None:
        path = self.path
        if kw == "fileversion" and self.version is None:
            self.version = ".".join(values[:2])
            if values[:2] not in (["1", "0"], ["1", "1"], ["1", "2"]):
                raise ParseError(
                    f"unsupported KLARF FileVersion {' '.join(values) or '(empty)'}; yieldkit reads 1.1 and 1.2 "
                    "(statement syntax) and 1.8 (Record syntax)",
                    path=path, line=line, record="FileVersion",
                )
        stmt: Statement = (keyword, values, line)
        if kw == "endoffile":
            self.seen_eof = True
            return
        if kw == "waferid":
            self._wafer(values, line)
        if kw == "classlookup":
            self._class_lookup(keyword, values, line)
        elif kw == "inspectiontest":
            self.test_no = _int(values, 0, path, line, keyword, bits=16)
        elif kw in ("sampletestplan", "sampledietestplan", "areapertest"):
            self._test_plan(keyword, kw, values, line)
        elif kw == "defectrecordspec":
            self._record_spec(keyword, values, line)
        elif kw == "summarylist" and self.current is not None:
            self._summary(values, line)
            self.current.closed = True
        self.state[kw] = stmt
        if self.current is None:
            self.file_header[kw] = stmt
        elif not self.current.closed or kw == "summarylist":
            self.current.header[kw] = stmt

    def _wafer(self, values: list[str], line: int) -> None:
        path = self.path
        if self.current is not None:
            self.current.closed = True
            self.ready.append(self.current)
        if not values:
            raise ParseError("WaferID without a value", path=path, line=line, record="WaferID")
        if len(values) > 1:
            log.warning("%s line %d: WaferID has %d values %r; using the first", path, line, len(values), values)
        current = RawWafer(wafer_id=values[0], line=line, header=dict(self.state))
        current.class_lookup = dict(self.class_lookup)
        current.tests = list(self.lot_tests)
        self.inherited = bool(self.lot_tests)
        self.wafers.append(current)
        self.current = current
        self.test_no = 1

    def _class_lookup(self, keyword: str, values: list[str], line: int) -> None:
        path = self.path
        declared = _int(values, 0, path, line, keyword)
        rest = values[1:]
        if len(rest) % 2:
            raise ParseError(f"ClassLookup entries must be number/name pairs; got {len(rest)} value(s)",
                             path=path, line=line, record=keyword)
        lookup = {}
        for k in range(0, len(rest), 2):
            lookup[_int(values, k + 1, path, line, keyword)] = rest[k + 1]
        if declared != len(lookup):
            self.notes.append(f"{path}, line {line}: ClassLookup declares {declared} classes but lists "
                              f"{len(lookup)}; using the {len(lookup)} listed")
        if self.current is not None and not self.current.closed:
            self.current.class_lookup.update(lookup)
        else:
            self.class_lookup.update(lookup)

    def _test_plan(self, keyword: str, kw: str, values: list[str], line: int) -> None:
        path, current = self.path, self.current
        if kw == "areapertest":
            try:
                area = float(values[0])
            except (IndexError, ValueError):
                raise ParseError(f"AreaPerTest must be a number, got {values!r}", path=path, line=line,
                                 record=keyword) from None
        else:
            declared = _int(values, 0, path, line, keyword)
            plan = _pairs(values[1:], path, line, keyword, declared, self.notes)
        tests = None
        if current is None:
            tests = self.lot_tests
            log.info("%s line %d: %s before the first WaferID is the lot's, for every wafer without its own",
                     path, line, keyword)
        elif not current.closed:
            if self.inherited:  # the wafer's own plan replaces the lot's
                current.tests, self.inherited = [], False
            tests = current.tests
        else:
            log.warning("%s line %d: %s after the SummaryList of wafer %r is ignored", path, line, keyword,
                        current.wafer_id)
        if tests is not None and kw != "areapertest":
            tests.append((self.test_no, plan, None))
        elif tests is not None:
            if tests and tests[-1][0] == self.test_no and tests[-1][2] is None:
                t, plan, _ = tests[-1]
                tests[-1] = (t, plan, area)
            else:
                tests.append((self.test_no, np.zeros((0, 2), np.int64), area))

    def _summary(self, values: list[str], line: int) -> None:
        """The wafer's SummaryList as columns named by the SummarySpec before it."""
        assert self.current is not None
        spec = self.state.get("summaryspec")
        if spec is None:
            log.info("%s line %d: SummaryList without a SummarySpec; not checked", self.path, line)
            return
        names = [v.upper() for v in spec[1][1:]]
        try:
            declared = int(spec[1][0]) if spec[1] else -1
        except ValueError:
            declared = -1
        if not names or declared != len(names) or len(values) % len(names):
            self.notes.append(f"{self.path}, line {line}: the SummaryList ({len(values)} values) does not match "
                              f"its SummarySpec (line {spec[2]}: {' '.join(spec[1])}); the file's totals cannot be "
                              "checked")
            return
        self.current.summary.append(({c: values[k :: len(names)] for k, c in enumerate(names)}, line))

    def _record_spec(self, keyword: str, values: list[str], line: int) -> None:
        path, current = self.path, self.current
        declared = _int(values, 0, path, line, keyword)
        names = [v.upper() for v in values[1:]]
        if declared != len(names):
            raise ParseError(
                f"DefectRecordSpec declares {declared} columns but names {len(names)}",
                path=path, line=line, record=keyword,
            )
        if current is not None and not current.closed:
            if current.chunks and names != current.columns:
                raise ParseError("DefectRecordSpec changes within a wafer", path=path, line=line, record=keyword)
            current.columns = names
            current.spec_line = line

    def _finish(self) -> RawFile:
        path = self.path
        if self.version is None:
            if not self.state:
                raise ParseError("empty file: no KLARF statements", path=path, line=1, record="FileVersion")
            raise ParseError("not a KLARF file: no FileVersion statement (expected FileVersion among the header "
                             "statements)", path=path, line=1, record="FileVersion")
        if not self.seen_eof:
            raise ParseError("the file ends without EndOfFile (truncated?)", path=path,
                             line=self.s.line_at(len(self.s.text)), record="EndOfFile")
        return RawFile(version=self.version, header=self.file_header, wafers=self.wafers,
                       class_lookup=self.class_lookup, notes=self.notes)


def parse_12(text: str | TextStream, path: Any) -> RawFile:
    """Parse KLARF 1.1/1.2 text (statements ending in ';') into raw wafers."""
    return _Parser12(text, path).run()


def wafers_12(text: TextStream, path: Any, sink: dict[str, Any]) -> Iterator[RawWafer]:
    """The wafers of a KLARF 1.1/1.2 text, each as soon as it is complete (so that a caller can
    convert and drop it); the file's version and the parse notes are put in ``sink`` as they are
    known, and the end-of-file checks made after the last wafer."""
    parser = _Parser12(text, path)
    sink["notes"] = parser.notes
    for rw in parser.iter_wafers():
        sink["version"] = parser.version
        yield rw
    parser._finish()
