"""KLARF 1.8 syntax: nested ``Record``/``Field``/``List`` blocks into raw wafer records.

Used by :func:`yieldkit.io.klarf.reader.parse_klarf_text`; the Data blocks of lists are
parsed with the same vectorised block parser as KLARF 1.1/1.2 defect lists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...errors import ParseError
from .statements import RawFile, RawWafer, Statement, TextStream, parse_block, stream_rows

log = logging.getLogger(__name__)

__all__ = ["parse_18", "wafers_18"]

#: what a Record body yields while it is read: each WaferRecord of a LotRecord, with the lot's body
_Found = Generator[tuple[dict[str, Any], dict[str, Any]], None, dict[str, Any]]


# ---------------------------------------------------------------------------------------
_TOK18 = re.compile(r'[ \t\r\n\f\v]*(?:"([^"]*)"|([{},;])|([^\s{},;"]+)|(\Z))')


class _Reader18:
    def __init__(self, text: str | TextStream, path: Any) -> None:
        self.s = text if isinstance(text, TextStream) else TextStream(text)
        self.path = path
        self.pos = 0
        self.notes: list[str] = []
        #: yield each WaferRecord of a LotRecord of the FileRecord as soon as it is closed
        self.stream_wafers = False
        #: skip the Data of the lists inside wafer records (a first pass for the file and lot headers)
        self.skip_wafer_data = False
        #: LotRecords of the FileRecord met so far
        self.lots = 0
        self._names: list[str] = []

    def err(self, msg: str, record: str, pos: int | None = None) -> ParseError:
        return ParseError(msg, path=self.path, line=self.s.line_at(self.pos if pos is None else pos), record=record)

    def next(self, record: str) -> tuple[str, str, int]:
        """Next token as (kind, value, start): kind is 'str', 'punct', 'word' or 'eof'."""
        m, self.pos = self.s.match(_TOK18, self.pos)
        if m is None:
            raise self.err("unterminated quoted string", record)
        self.pos = m.end()
        if m.group(1) is not None:
            return "str", m.group(1), m.start(1)
        if m.group(2) is not None:
            return "punct", m.group(2), m.start(2)
        if m.group(3) is not None:
            return "word", m.group(3), m.start(3)
        return "eof", "", m.start(4)

    def expect(self, value: str, record: str) -> int:
        kind, tok, start = self.next(record)
        if tok != value or kind not in ("punct", "word"):
            raise self.err(f"expected {value!r}, found {tok or 'end of file'!r}", record, start)
        return start

    def record(self, name: str, body: dict[str, Any] | None = None) -> _Found:
        """Body of a Record after its '{': fields, lists and sub-records (returned by the
        generator, which yields the closed wafer records when ``stream_wafers``)."""
        body = body if body is not None else {"fields": {}, "lists": {}, "records": []}
        self._names.append(name.lower())
        while True:
            kind, tok, start = self.next(name)
            if kind == "eof":
                raise self.err(f"Record {name} is not closed (truncated file?)", name, start)
            if tok == "}":
                self._names.pop()
                return body
            low = tok.lower()
            line = self.s.line_at(start)
            if low == "record":
                _, rname, _ = self.next("Record")
                kind, tok2, s2 = self.next(rname)
                rid = ""
                if kind == "str" or (kind == "word"):
                    rid = tok2
                    self.expect("{", rname)
                elif tok2 != "{":
                    raise self.err(f"expected '{{' after Record {rname}", rname, s2)
                sub: dict[str, Any] = {"fields": {}, "lists": {}, "records": [], "name": rname, "id": rid,
                                       "line": line}
                if self._names == ["filerecord"] and rname.lower() == "lotrecord":
                    self.lots += 1
                yield from self.record(rname, sub)
                body["records"].append(sub)
                if self.stream_wafers and rname.lower() == "waferrecord" and self._names == ["filerecord", "lotrecord"]:
                    yield sub, body
            elif low == "field":
                _, fname, _ = self.next("Field")
                _, count, _ = self.next(fname)
                try:
                    ncount = int(count)
                except ValueError:
                    raise self.err(f"Field {fname}: expected a value count, found {count!r}", fname) from None
                self.expect("{", fname)
                values: list[str] = []
                while True:
                    kind, v, s3 = self.next(fname)
                    if kind == "eof":
                        raise self.err(f"Field {fname} is not closed", fname, s3)
                    if v == "}" and kind == "punct":
                        break
                    if v == "," and kind == "punct":
                        continue
                    values.append(v)
                if ncount != len(values):
                    self.notes.append(f"{self.path}, line {line}: Field {fname} declares {ncount} values but has "
                                      f"{len(values)}")
                body["fields"][fname.lower()] = (fname, values, line)
            elif low == "list":
                _, lname, _ = self.next("List")
                body["lists"][lname.lower()] = self.list_(lname, line)
            else:
                raise self.err(f"expected Record, Field, List or '}}', found {tok!r}", name, start)

    def list_(self, name: str, line: int) -> dict[str, Any]:
        self.expect("{", name)
        columns_line = self.s.line_at(self.expect("Columns", name))
        _, count, _ = self.next(name)
        self.expect("{", name)
        types: list[str] = []
        cols: list[str] = []
        words: list[str] = []
        while True:
            kind, v, s = self.next(name)
            if kind == "eof":
                raise self.err(f"List {name}: Columns not closed", name, s)
            if kind == "punct" and v in ",}":
                if len(words) != 2:
                    raise self.err(f"List {name}: a column must be 'type NAME', got {' '.join(words)!r}", name, s)
                types.append(words[0])
                cols.append(words[1].upper())
                words = []
                if v == "}":
                    break
                continue
            words.append(v)
        try:
            if int(count) != len(cols):
                raise self.err(f"List {name}: Columns declares {count} columns but names {len(cols)}", name)
        except ValueError:
            raise self.err(f"List {name}: bad column count {count!r}", name) from None
        _, data_kw, s = self.next(name)
        if data_kw.lower() != "data":
            raise self.err(f"List {name}: expected Data, found {data_kw!r}", name, s)
        _, nrows_tok, _ = self.next(name)
        try:
            nrows = int(nrows_tok)
        except ValueError:
            raise self.err(f"List {name}: bad row count {nrows_tok!r}", name) from None
        open_pos = self.expect("{", name)
        data_line = self.s.line_at(open_pos)
        if self.skip_wafer_data and "waferrecord" in self._names:
            return self._skip_data(open_pos, name, cols, types, (line, columns_line, data_line))
        pieces: list[tuple[dict[str, pa.Array], np.ndarray]] = []
        found = None
        if "imagelist" in (t.lower() for t in types):
            self.s.fill_all()
            block, end = self._scan_braced(open_pos + 1, name)
            pieces.append(self._image_rows(block, cols, types, data_line, name))
        elif not self.s.eof:  # read piece by piece: what parse_block gives on the whole Data block
            found, end, nterm = stream_rows(self.s, open_pos + 1, cols, end="}", forbidden='{"', semicolons=True)
            open_pos = end - 1
            while found is None and self.s.text.find("}", open_pos + 1) < 0 and self.s.fill():
                pass  # quoted text: the whole list in the window
        if found is not None:
            pieces = [(chunk, lines) for chunk, lines, _ in found]
            if not pieces:
                pieces.append(({c: pa.array([], pa.large_string()) for c in cols}, np.zeros(0, np.int64)))
            nrow = sum(len(lines) for _, lines in pieces)
            if nterm and nterm != nrow:
                raise ParseError(f"List {name}: {nterm} rows end in ';' but the values make {nrow} rows "
                                 f"of {len(cols)} columns (rows do not match Columns)",
                                 path=self.path, line=data_line, record=name)
        elif not pieces:
            text = self.s.text
            end = text.find("}", open_pos + 1)
            if end < 0:
                raise ParseError(f"List {name}: Data block not closed (truncated file?)", path=self.path,
                                 line=data_line, record=name)
            block = text[open_pos + 1 : end]
            if "{" in block:
                raise self.err(f"List {name}: unexpected '{{' inside Data", name, open_pos + 1 + block.index("{"))
            chunk, row_lines = parse_block(block.replace(";", " "), cols, path=self.path, first_line=data_line,
                                           record=name, imagelist=False)
            pieces.append((chunk, row_lines))
            # rows end in ';': check the count of terminators too
            nterm = block.count(";")
            if nterm and nterm != len(row_lines):
                raise ParseError(f"List {name}: {nterm} rows end in ';' but the values make {len(row_lines)} rows "
                                 f"of {len(cols)} columns (rows do not match Columns)",
                                 path=self.path, line=data_line, record=name)
        self.pos = end + 1
        nrow = sum(len(lines) for _, lines in pieces)
        if nrows != nrow:
            raise ParseError(f"List {name}: Data declares {nrows} rows but holds {nrow}",
                             path=self.path, line=data_line, record=name)
        self.expect("}", name)
        if len(pieces) == 1 or name.lower() == "defectlist":
            chunk, row_lines = pieces[0]
        else:  # a small list (class lookup, test plan, totals) read in several pieces
            chunk = {c: pa.concat_arrays([p[0][c] for p in pieces]) for c in cols}
            row_lines = np.concatenate([p[1] for p in pieces])
        return {"columns": cols, "types": types, "data": chunk, "row_lines": row_lines, "line": line,
                "columns_line": columns_line, "pieces": pieces}

    def _skip_data(self, open_pos: int, name: str, cols: list[str], types: list[str],
                   lines: tuple[int, int, int]) -> dict[str, Any]:
        """Pass over a Data block without reading it (its text is dropped as it goes)."""
        from .statements import Restart

        if "imagelist" in (t.lower() for t in types):
            raise Restart("image lists are read whole")
        s, pos = self.s, open_pos + 1
        while (end := s.text.find("}", pos)) < 0:
            if s.eof:
                raise ParseError(f"List {name}: Data block not closed (truncated file?)", path=self.path,
                                 line=lines[2], record=name)
            pos = s.compact(len(s.text))
            s.fill()
        self.pos = end + 1
        self.expect("}", name)
        empty = {c: pa.array([], pa.large_string()) for c in cols}
        return {"columns": cols, "types": types, "data": empty, "row_lines": np.zeros(0, np.int64), "line": lines[0],
                "columns_line": lines[1], "pieces": []}

    def _scan_braced(self, start: int, name: str) -> tuple[str, int]:
        """Text up to the '}' that closes a Data block holding nested braces (image lists)."""
        depth = 0
        i = start
        text = self.s.text
        in_str = False
        while i < len(text):
            ch = text[i]
            if in_str:
                if ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    return text[start:i], i
                depth -= 1
            i += 1
        raise self.err(f"List {name}: Data block not closed (truncated file?)", name, start)

    def _image_rows(self, block: str, cols: list[str], types: list[str], first_line: int,
                    name: str) -> tuple[dict[str, pa.Array], np.ndarray]:
        """Rows with ImageList cells ('N' or 'Images n { ... }'): row by row (slow path)."""
        tok = re.compile(r'\s*(?:"([^"]*)"|([{},;])|([^\s{},;"]+))')
        values: list[list[str | None]] = [[] for _ in cols]
        row_lines: list[int] = []
        pos = 0
        line = first_line
        while block[pos:].strip():
            row_start = pos + (len(block[pos:]) - len(block[pos:].lstrip()))
            line += block.count("\n", pos, row_start)
            row_lines.append(line)
            for c, t in enumerate(types):
                m = tok.match(block, pos)
                if m is None or m.group(2) is not None:
                    raise ParseError(f"row {len(row_lines)} of {name} has fewer values than its {len(cols)} columns",
                                     path=self.path, line=line, record=name)
                pos = m.end()
                v = m.group(1) if m.group(1) is not None else m.group(3)
                if t.lower() == "imagelist" and v.lower() == "images":
                    m2 = tok.match(block, pos)
                    pos = m2.end() if m2 else pos
                    brace = block.find("{", pos)
                    close = block.find("}", brace)
                    if brace < 0 or close < 0:
                        raise ParseError("unterminated image list", path=self.path, line=line, record=name)
                    v = block[brace + 1 : close].strip()
                    pos = close + 1
                values[c].append(v)
            m = tok.match(block, pos)
            if m is None or m.group(2) != ";":
                raise ParseError(f"row {len(row_lines)} of {name} has more values than its {len(cols)} columns "
                                 "(or lacks its ';')", path=self.path, line=line, record=name)
            line += block.count("\n", row_start, m.end())
            pos = m.end()
        chunk = {c: pa.array(v, type=pa.large_string()) for c, v in zip(cols, values)}
        return chunk, np.asarray(row_lines, dtype=np.int64)


def _done(gen: _Found) -> dict[str, Any]:
    """Read a record to its end, returning its body."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return dict(stop.value)


def _open(r: _Reader18, path: Any) -> str:
    """Read ``Record FileRecord "version" {``; returns the version."""
    kind, tok, start = r.next("FileRecord")
    if tok.lower() != "record":
        raise r.err("not a KLARF 1.8 file: expected 'Record FileRecord'", "FileRecord", start)
    _, name, _ = r.next("FileRecord")
    kind, version, vstart = r.next("FileRecord")
    if name.lower() != "filerecord":
        raise r.err(f"expected FileRecord, found {name!r}", "FileRecord", vstart)
    if version not in ("1.7", "1.8", "1.9"):
        raise ParseError(
            f"unsupported KLARF FileVersion {version!r}; yieldkit reads 1.1 and 1.2 (statement syntax) "
            "and 1.8 (Record syntax)",
            path=path, line=r.s.line_at(vstart), record="FileRecord",
        )
    r.expect("{", "FileRecord")
    return version


def _close(r: _Reader18) -> None:
    """Read ``EndOfFile;`` and the end of the text."""
    kind, tok, start = r.next("EndOfFile")
    if tok.lower() != "endoffile":
        raise r.err("the file does not end with EndOfFile (truncated?)", "EndOfFile", start)
    kind, tok, start = r.next("EndOfFile")
    if tok == ";":
        kind, tok, start = r.next("EndOfFile")
    if kind != "eof":
        raise r.err("content after EndOfFile", "EndOfFile", start)


def _lookup(lists: dict[str, Any], path: Any) -> dict[int, str]:
    """The class number -> name table of a ClassLookupList."""
    cl = lists.get("classlookuplist")
    if not cl:
        return {}
    nums = cl["data"].get("CLASSNUMBER")
    names = cl["data"].get("CLASSNAME")
    if nums is None or names is None:
        return {}
    try:
        keys = pc.cast(nums, pa.int64()).to_pylist()
    except pa.ArrowInvalid:
        raise ParseError("ClassLookupList: CLASSNUMBER must be integers", path=path, line=cl["line"],
                         record="ClassLookupList") from None
    return dict(zip(keys, names.to_pylist()))


def _raw_wafer(w: dict[str, Any], lot_header: dict[str, Statement], lot_lookup: dict[int, str],
               path: Any) -> RawWafer:
    """A WaferRecord (its fields, lists and test records) as a raw wafer, under its lot's header."""
    rw = RawWafer(wafer_id=w["id"], line=w["line"], header=dict(lot_header))
    rw.header.update(w["fields"])
    rw.header["waferid"] = ("WaferID", [w["id"]], w["line"])
    rw.class_lookup = dict(lot_lookup)
    rw.class_lookup.update(_lookup(w["lists"], path))
    dl = w["lists"].get("defectlist")
    if dl is not None:
        rw.columns = dl["columns"]
        rw.types = dl["types"]
        rw.spec_line = dl["columns_line"]
        for chunk, row_lines in dl["pieces"]:
            rw.chunks.append(chunk)
            rw.chunk_lines.append(row_lines)
        rw.has_defect_list = True
    for sub in w["records"]:
        if sub["name"].lower() == "summaryrecord":
            for lst in sub["lists"].values():
                if "NDEFECT" in lst["columns"]:
                    rw.summary.append(({c: [str(v) for v in lst["data"][c].to_pylist()]
                                        for c in lst["columns"]}, lst["line"]))
        if sub["name"].lower() != "testrecord":
            continue
        try:
            tno = int(sub["id"]) if sub["id"] else len(rw.tests) + 1
        except ValueError:
            tno = len(rw.tests) + 1
        if not -(2**15) <= tno < 2**15:
            raise ParseError(f"test number {tno} is outside the 16-bit range of inspection tests",
                             path=path, line=sub["line"], record="TestRecord")
        area = None
        if "areapertest" in sub["fields"]:
            try:
                area = float(sub["fields"]["areapertest"][1][0])
            except (IndexError, ValueError):
                raise ParseError("AreaPerTest must be a number", path=path,
                                 line=sub["fields"]["areapertest"][2], record="AreaPerTest") from None
        plan = np.zeros((0, 2), np.int64)
        stp = sub["lists"].get("sampletestplanlist")
        if stp is not None:
            try:
                xs = pc.cast(stp["data"]["XINDEX"], pa.int64()).to_numpy(zero_copy_only=False)
                ys = pc.cast(stp["data"]["YINDEX"], pa.int64()).to_numpy(zero_copy_only=False)
            except (KeyError, pa.ArrowInvalid):
                raise ParseError("SampleTestPlanList needs integer XINDEX and YINDEX columns", path=path,
                                 line=stp["line"], record="SampleTestPlanList") from None
            plan = np.column_stack([xs, ys]).astype(np.int64)
            if (np.abs(plan) > 2**31 - 1).any():
                big = int(plan.ravel()[np.argmax(np.abs(plan.ravel()) > 2**31 - 1)])
                raise ParseError(f"die index {big} is outside the 32-bit range of die indices", path=path,
                                 line=stp["line"], record="SampleTestPlanList")
        rw.tests.append((tno, plan, area))
    return rw


def parse_18(text: str | TextStream, path: Any) -> RawFile:
    """Parse KLARF 1.8 text (``Record FileRecord ...``) into raw wafers."""
    r = _Reader18(text, path)
    version = _open(r, path)
    root = _done(r.record("FileRecord"))
    _close(r)

    file_header: dict[str, Statement] = dict(root["fields"])
    class_lookup: dict[int, str] = {}
    wafers: list[RawWafer] = []

    def lookup_from(lists: dict[str, Any]) -> dict[int, str]:
        return _lookup(lists, path)

    class_lookup.update(lookup_from(root["lists"]))
    for lot in root["records"]:
        if lot["name"].lower() != "lotrecord":
            continue
        lot_header = dict(file_header)
        lot_header.update(lot["fields"])
        lot_header["lotid"] = ("LotID", [lot["id"]], lot["line"])
        lot_lookup = dict(class_lookup)
        lot_lookup.update(lookup_from(lot["lists"]))
        for w in lot["records"]:
            if w["name"].lower() != "waferrecord":
                continue
            wafers.append(_raw_wafer(w, lot_header, lot_lookup, path))
    return RawFile(version=version, header=file_header, wafers=wafers, class_lookup=class_lookup, notes=r.notes)


def wafers_18(streams: Callable[[], TextStream], path: Any, sink: dict[str, Any]) -> Iterator[RawWafer]:
    """The wafers of a KLARF 1.8 file, each as soon as its WaferRecord is closed (so that a
    caller can convert and drop it); the version and the parse notes are put in ``sink``.

    Two passes over the text (``streams()`` gives it anew): the first reads the fields and
    lists of the FileRecord and LotRecords, passing over the data of the wafers, since a
    lot's fields and class lookup hold for all its wafers wherever they come; the second
    reads the wafers.
    """
    first = _Reader18(streams(), path)
    first.skip_wafer_data = True
    try:
        _open(first, path)
        root = _done(first.record("FileRecord"))
        _close(first)
    finally:
        first.s.close()
    lots = [rec for rec in root["records"] if rec["name"].lower() == "lotrecord"]
    r = _Reader18(streams(), path)
    try:
        r.stream_wafers = True
        sink["notes"] = r.notes
        sink["version"] = _open(r, path)
        for w, _ in r.record("FileRecord"):
            lot = lots[r.lots - 1]
            header = dict(root["fields"])
            header.update(lot["fields"])
            header["lotid"] = ("LotID", [lot["id"]], lot["line"])
            lookup = _lookup(root["lists"], path)
            lookup.update(_lookup(lot["lists"], path))
            yield _raw_wafer(w, header, lookup, path)
            dl = w["lists"].get("defectlist")
            if dl is not None:  # converted: only the wafer's header stays
                dl["pieces"], dl["data"] = [], {}
        _close(r)
    finally:
        r.s.close()
