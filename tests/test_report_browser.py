"""The HTML report in a real headless Chromium, driven through the DevTools protocol.

The session fixture installs Debian's ``chromium`` when it is missing (``apt-get``, as root)
and skips, saying why, only where it cannot be installed. One browser serves the module; each
report is opened from disk in a fresh page. The tests assert no console errors or exceptions,
that the sections, tables and images are present and decoded, that tables sort and filter,
that the gallery filters by lot, pattern and yield and opens a larger view, that the report
reads without JavaScript, and save a screenshot of every section under the pytest tmp dir.
Reports: a small simulated fab, the demo data (``data_samples/``, as ``make demo`` builds it)
and 600 wafers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import yieldkit as yk
from yieldkit.cli import main
from yieldkit.report import build_report

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,2000"]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary, installed from Debian's packages when missing."""
    path = _find_chromium()
    if path:
        return path
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, timeout=900,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"chromium could not be installed with apt-get: {exc}")
    path = _find_chromium()
    if not path:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return path


class _Page:
    """A minimal DevTools-protocol client of one page target."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(method)

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[dict]:
        """Exceptions, console errors and log errors seen so far."""
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]

    def click(self, selector: str) -> None:
        """A real mouse click (DevTools input events) at the centre of the first element matching ``selector``."""
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as keyboard input."""
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot_sections(self, directory: Path, scale: float = 1.0) -> dict[str, int]:
        """One PNG per ``<section>`` (clipped to it, at most 3000 px tall); returns bytes per section."""
        boxes = self.eval("""Array.from(document.querySelectorAll('section')).map(s => {
            const r = s.getBoundingClientRect();
            return {id: s.id, x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height}; })""")
        directory.mkdir(parents=True, exist_ok=True)
        sizes = {}
        for b in boxes:
            clip = {"x": b["x"], "y": b["y"], "width": max(b["w"], 1), "height": min(max(b["h"], 1), 3000),
                    "scale": scale}
            shot = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
            data = base64.b64decode(shot["data"])
            (directory / f"{b['id']}.png").write_bytes(data)
            sizes[b["id"]] = len(data)
        return sizes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Browser:
    """One headless Chromium; :meth:`open` loads a file in a new page target."""

    def __init__(self, chromium: str) -> None:
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="yk-chromium-")
        self.proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--remote-debugging-port={self.port}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pages: list[_Page] = []
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise AssertionError("chromium did not expose the DevTools endpoint")

    def open(self, path: Path, *, javascript: bool = True) -> _Page:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.load(r)
        page = _Page(target["webSocketDebuggerUrl"])
        self.pages.append(page)
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        if not javascript:
            page.call("Emulation.setScriptExecutionDisabled", value=True)
        page.events.clear()
        page.call("Page.navigate", url=path.resolve().as_uri())
        page.wait_event("Page.loadEventFired")
        return page

    def close(self) -> None:
        for p in self.pages:
            p.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(chromium):
    b = _Browser(chromium)
    yield b
    b.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=4, retest_rate=0.01, signature_rate=0.3, random_state=21)
    out = tmp_path_factory.mktemp("browser") / "report.html"
    build_report(yk.analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names),
                 title="<script>alert(1)</script> browser check", max_maps=8, output=out)
    return out


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """The report ``make demo`` writes, from data_samples/."""
    d = REPO / "data_samples"
    out = tmp_path_factory.mktemp("demo") / "demo.html"
    rc = main(["--quiet", "report", str(d / "dies.parquet"), "--defects", str(d / "defects.parquet"),
               "--wafers", str(d / "wafers.csv"), "--layout", str(d / "layout.json"), "--bin-names",
               str(d / "bins.json"), "--title", "yieldkit demo: simulated fab", "-o", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def big_report(tmp_path_factory) -> Path:
    """600 wafers (24 lots of 25) of 10 x 8 mm dies (332 a wafer); 60 maps in the gallery at a small dpi."""
    layout = yk.WaferLayout(diameter_mm=200, die_pitch_um=(10000, 8000), edge_exclusion_mm=3)
    fab = yk.simulate_fab(n_lots=24, wafers_per_lot=25, layout=layout, signature_rate=0.2, retest_rate=0.01,
                          random_state=6)
    out = tmp_path_factory.mktemp("big") / "big.html"
    build_report(yk.analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names), title="600 wafers",
                 max_maps=60, dpi=50, output=out)
    return out


_STATE = """(() => ({
    sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
    tables: Array.from(document.querySelectorAll('table')).map(t => t.id),
    images: document.images.length,
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
    gallery: document.querySelectorAll('.gallery img').length,
    scripts: Array.from(document.scripts).map(s => s.id),
    title: document.title,
    h1: document.querySelector('h1').textContent,
    lotRows: document.querySelectorAll('#lot-table tbody tr').length,
    sentences: Array.from(document.querySelectorAll('#executive-summary li')).map(li => li.textContent),
    summaryLinks: Array.from(document.querySelectorAll('#executive-summary a')).map(a => a.getAttribute('href')),
    filters: document.querySelectorAll('input.yk-filter').length,
    galleryForm: !document.getElementById('gallery-filter').hidden,
}))()"""


def test_report_in_headless_chromium(browser, report_file):
    page = browser.open(report_file)
    state = page.eval(_STATE)
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    screenshot = report_file.with_name("report_screenshot.png")
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors = page.errors()
    assert errors == [], errors
    for sec in ("summary", "lots", "retest", "wafer-maps", "bin-pareto", "defect-pareto", "kill-ratios", "spc",
                "wafers"):
        assert sec in state["sections"], sec
    for tid in ("lot-table", "bin-pareto-table", "defect-pareto-table", "defect-kill-table", "kill-ratio-table",
                "wafer-table"):
        assert tid in state["tables"], tid
    assert state["gallery"] == 8
    assert state["images"] >= 8 + 6 and state["broken"] == 0
    # the only script is the report's own: the lot name in the title stayed text
    assert state["scripts"] == ["report-script"]
    assert state["h1"].startswith("<script>alert(1)</script>")
    assert state["lotRows"] == 2
    assert screenshot.stat().st_size > 10_000
    # the executive summary speaks in sentences and links to sections that exist
    assert any(s.startswith("Final yield is") for s in state["sentences"])
    assert state["summaryLinks"] and all(h[1:] in state["sections"] for h in state["summaryLinks"])
    assert state["filters"] >= 3 and state["galleryForm"]


def _column(page: _Page, table: str, col: str, attr: str | None = "data-v") -> list:
    """The visible cells of column ``col`` (by its data-col) of ``table``, as numbers (data-v) or text."""
    return page.eval(f"""(() => {{ const t = document.getElementById({json.dumps(table)});
        const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.dataset.col === {json.dumps(col)});
        return Array.from(t.tBodies[0].rows).filter(r => !r.hidden).map(r => {{ const c = r.cells[i];
            return {json.dumps(attr)} ? (c.hasAttribute({json.dumps(attr)}) ? parseFloat(c.getAttribute({json.dumps(attr)})) : null)
                                       : c.textContent; }}); }})()""")


def _sort_and_filter(page: _Page) -> None:
    y = _column(page, "wafer-table", "yield")
    assert len(y) >= 8
    page.click('#wafer-table th[data-col="yield"]')
    assert _column(page, "wafer-table", "yield") == sorted(y)
    assert page.eval("""document.querySelector('#wafer-table th[data-col="yield"]').getAttribute('aria-sort')""") == \
        "ascending"
    page.click('#wafer-table th[data-col="yield"]')
    assert _column(page, "wafer-table", "yield") == sorted(y, reverse=True)
    # text columns sort as text, the rows move whole (the yield goes with its wafer)
    before = list(zip(_column(page, "wafer-table", "lot_id", None), _column(page, "wafer-table", "wafer_id", None),
                      _column(page, "wafer-table", "yield"), strict=True))
    page.click('#wafer-table th[data-col="wafer_id"]')
    after = list(zip(_column(page, "wafer-table", "lot_id", None), _column(page, "wafer-table", "wafer_id", None),
                     _column(page, "wafer-table", "yield"), strict=True))
    assert sorted(before) == sorted(after)
    assert [w for _, w, _ in after] == sorted(w for _, w, _ in after)
    # filtering: type a lot id into the table's filter box
    lot = before[0][0]
    n_lot = sum(1 for r in before if r[0] == lot)
    sel = "input.yk-filter[aria-label='filter the rows of wafer-table']"
    page.type_into(sel, lot)
    lots = _column(page, "wafer-table", "lot_id", None)
    assert lots == [lot] * n_lot
    page.eval(f"""(() => {{ const i = document.querySelector("{sel}"); i.value = ''; i.dispatchEvent(new Event('input'));
        }})()""")
    assert len(_column(page, "wafer-table", "lot_id", None)) == len(before)


def _gallery(page: _Page) -> None:
    figs = page.eval("""Array.from(document.querySelectorAll('.gallery figure[data-lot]')).map(f => ({
        lot: f.dataset.lot, pattern: f.dataset.pattern, y: parseFloat(f.dataset.yield), hidden: f.hidden}))""")
    assert figs and not any(f["hidden"] for f in figs)
    lot = figs[-1]["lot"]

    def visible():
        return page.eval("""Array.from(document.querySelectorAll('.gallery figure[data-lot]')).filter(f => !f.hidden)
            .map(f => ({lot: f.dataset.lot, pattern: f.dataset.pattern, y: parseFloat(f.dataset.yield)}))""")

    def choose(name: str, value: str) -> None:
        page.eval(f"""(() => {{ const e = document.querySelector('#gallery-filter [name="{name}"]'); e.value = {json.dumps(value)};
            e.dispatchEvent(new Event('input', {{bubbles: true}})); }})()""")

    choose("lot", lot)
    shown = visible()
    assert shown and all(f["lot"] == lot for f in shown) and len(shown) == sum(f["lot"] == lot for f in figs)
    assert page.eval("document.querySelector('#gallery-filter .yk-count').textContent") == \
        f"{len(shown)} of {len(figs)} maps"
    choose("lot", "")
    patterns = sorted({f["pattern"] for f in figs if f["pattern"]})
    assert patterns, "the gallery knows each wafer's pattern"
    choose("pattern", patterns[0])
    assert visible() == [f for f in visible() if f["pattern"] == patterns[0]]
    assert len(visible()) == sum(f["pattern"] == patterns[0] for f in figs)
    choose("pattern", "")
    median = sorted(f["y"] for f in figs)[len(figs) // 2]
    choose("ymax", f"{median:.4f}")
    assert len(visible()) == sum(f["y"] <= median + 1e-9 for f in figs) and all(f["y"] <= median + 1e-9 for f in visible())
    choose("ymax", "100")
    assert len(visible()) == len(figs)
    # larger view: a click on a map opens it in a dialog, wider than the thumbnail; Escape closes it
    page.click(".gallery figure[data-lot] img")
    view = page.eval("""(() => { const d = document.getElementById('viewer'), i = d.querySelector('img'),
        t = document.querySelector('.gallery figure[data-lot] img');
        return {open: d.open, same: i.src === t.src, width: i.getBoundingClientRect().width,
                thumb: t.getBoundingClientRect().width, caption: d.querySelector('p').textContent,
                decoded: i.complete && i.naturalWidth > 0}; })()""")
    assert view["open"] and view["same"] and view["decoded"], view
    assert view["width"] > 1.5 * view["thumb"], view
    assert view["caption"].startswith(figs[0]["lot"])
    for kind in ("keyDown", "keyUp"):
        page.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
    assert page.eval("document.getElementById('viewer').open") is False


def _check_sections(page: _Page, directory: Path, expected: tuple[str, ...], scale: float = 1.0) -> None:
    state = page.eval(_STATE)
    assert state["broken"] == 0 and state["scripts"] == ["report-script"]
    for sec in expected:
        assert sec in state["sections"], sec
    sizes = page.screenshot_sections(directory, scale)
    assert set(sizes) == set(state["sections"])
    assert all(n > 1_000 for n in sizes.values()), sizes


def test_demo_report_explored(browser, demo_report):
    """Sorting, filtering, the gallery filter and the larger view on the demo report; a screenshot per section."""
    page = browser.open(demo_report)
    _check_sections(page, demo_report.parent / "screenshots", (
        "summary", "lots", "retest", "wafer-maps", "bin-pareto", "defect-pareto", "kill-ratios", "spc", "zonal",
        "clustering", "models", "dppm", "patterns", "commonality", "wafers"))
    # readable headers: labels with units, no scientific notation, no empty columns
    heads = page.eval("Array.from(document.querySelectorAll('#lot-table th')).map(t => t.textContent)")
    assert "Yield [%]" in heads and "lot_id" not in heads
    cells = page.eval("Array.from(document.querySelectorAll('td[data-v]')).map(td => td.textContent)")
    assert len(cells) > 500 and not [c for c in cells if re.search(r"\d[eE][+-]?\d", c)]
    models = page.eval("Array.from(document.querySelectorAll('#models-table th')).map(t => t.dataset.col)")
    assert "warnings" not in models and "error" not in models
    # missing numbers sort last both ways
    lr = _column(page, "models-table", "lr_stat")
    assert None in lr and any(v is not None for v in lr)
    for order in ("ascending", "descending"):
        page.click('#models-table th[data-col="lr_stat"]')
        got = _column(page, "models-table", "lr_stat")
        values = [v for v in lr if v is not None]
        assert got == sorted(values, reverse=order == "descending") + [None] * (len(lr) - len(values)), order
    _sort_and_filter(page)
    _gallery(page)
    assert page.errors() == []


def test_defects_only_report_explored(browser, tmp_path):
    """An inspection without die results: a gallery without yields filters by lot, with no console error."""
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=2, random_state=4)
    out = tmp_path / "defects.html"
    build_report(yk.analyze(None, fab.defects, layout=fab.layout), max_maps=4, output=out)
    page = browser.open(out)
    figs = page.eval("Array.from(document.querySelectorAll('.gallery figure[data-lot]')).map(f => f.dataset.lot)")
    assert len(figs) == 4
    assert page.eval("document.querySelector('#gallery-filter [name=ymax]')") is None
    page.eval("""(() => { const e = document.querySelector('#gallery-filter [name="lot"]'); e.value = 'L0002';
        e.dispatchEvent(new Event('input', {bubbles: true})); })()""")
    shown = page.eval("Array.from(document.querySelectorAll('.gallery figure[data-lot]')).filter(f => !f.hidden)"
                      ".map(f => f.dataset.lot)")
    assert shown == [lot for lot in figs if lot == "L0002"] and shown
    page.click('#defect-density-table th[data-col="n_defects"]')
    n = _column(page, "defect-density-table", "n_defects")
    assert n == sorted(n)
    assert page.errors() == []


def test_big_report_explored(browser, big_report):
    """600 wafers: every wafer's row sorts and filters, the gallery of the 60 worst filters."""
    page = browser.open(big_report)
    _check_sections(page, big_report.parent / "screenshots", ("summary", "lots", "wafer-maps", "spc", "wafers"),
                    scale=0.5)
    assert page.eval("document.querySelectorAll('#wafer-table tbody tr').length") == 600
    assert page.eval("document.querySelectorAll('.gallery figure[data-lot]').length") == 60
    _sort_and_filter(page)
    _gallery(page)
    assert page.errors() == []


def test_report_reads_without_javascript(browser, report_file):
    """With scripts disabled every row and map shows, and no control that needs the script."""
    page = browser.open(report_file, javascript=False)
    s = page.eval("""(() => ({
        rows: Array.from(document.querySelectorAll('tbody tr')).filter(r => r.hidden).length,
        figs: Array.from(document.querySelectorAll('.gallery figure')).filter(f => f.hidden).length,
        form: document.getElementById('gallery-filter').hidden,
        inputs: document.querySelectorAll('input.yk-filter').length,
        sortable: document.querySelectorAll('th.sortable').length,
        api: typeof window.yieldkitReport,
        summary: document.querySelectorAll('#executive-summary li').length,
        lotRows: document.querySelectorAll('#lot-table tbody tr').length,
    }))()""")
    assert s == {"rows": 0, "figs": 0, "form": True, "inputs": 0, "sortable": 0, "api": "undefined",
                 "summary": s["summary"], "lotRows": 2}
    assert s["summary"] >= 4
