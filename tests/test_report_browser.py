"""The HTML report in a real headless Chromium, driven through the DevTools protocol.

The session fixture installs Debian's ``chromium`` when it is missing (``apt-get``, as root)
and skips, saying why, only where it cannot be installed. The report is opened from disk;
the test asserts no console errors or exceptions, that the expected sections, tables and
images are present and decoded, and saves a screenshot next to the report.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import yieldkit as yk
from yieldkit.report import build_report

pytestmark = pytest.mark.browser

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
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    fab = yk.simulate_fab(n_lots=2, wafers_per_lot=4, retest_rate=0.01, signature_rate=0.3, random_state=21)
    out = tmp_path_factory.mktemp("browser") / "report.html"
    build_report(yk.analyze(fab.dies, fab.defects, fab.wafers, fab.layout, fab.bin_names),
                 title="<script>alert(1)</script> browser check", max_maps=8, output=out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_report_in_headless_chromium(chromium, report_file):
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="yk-chromium-")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert targets, "chromium did not expose a page target"
        page = _Page(targets[0]["webSocketDebuggerUrl"])
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=report_file.resolve().as_uri())
        page.wait_event("Page.loadEventFired")
        state = page.eval("""(() => ({
            sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
            tables: Array.from(document.querySelectorAll('table')).map(t => t.id),
            images: document.images.length,
            broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
            gallery: document.querySelectorAll('.gallery img').length,
            scripts: document.scripts.length,
            title: document.title,
            h1: document.querySelector('h1').textContent,
            lotRows: document.querySelectorAll('#lot-table tbody tr').length,
        }))()""")
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        screenshot = report_file.with_name("report_screenshot.png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
        page.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == [], errors
    for sec in ("summary", "lots", "retest", "wafer-maps", "bin-pareto", "defect-pareto", "kill-ratios", "spc",
                "wafers"):
        assert sec in state["sections"], sec
    for tid in ("lot-table", "bin-pareto-table", "defect-pareto-table", "defect-kill-table", "kill-ratio-table",
                "wafer-table"):
        assert tid in state["tables"], tid
    assert state["gallery"] == 8
    assert state["images"] >= 8 + 6 and state["broken"] == 0
    assert state["scripts"] == 0  # the lot name in the title stayed text
    assert state["h1"].startswith("<script>alert(1)</script>")
    assert state["lotRows"] == 2
    assert screenshot.stat().st_size > 10_000
