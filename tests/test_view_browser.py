"""End to end in a real browser: ``quantcore view`` and ``debug --html``.

Starts ``quantcore view`` on 127.0.0.1 with a fixture model and its ``debug``
overlays, loads the page in headless Chromium driven over the DevTools protocol (a
pipe: no extra Python package), waits until Model Explorer has drawn the graph,
and checks that the overlay reached the right nodes: the "Node data" side table
lists every operator in order with the overlay's value, its cells have the colours
the thresholds give, and the graph's nodes are painted in those colours (pixels of
the screenshot). Ctrl-C (SIGINT) then stops the server cleanly. The HTML report of
``debug --html`` is opened the same way and its table checked.

Screenshots go to ``$QUANTCORE_ARTIFACTS`` (default ``tests/artifacts/``, which
ignores itself). Skipped, with the reason, when Chromium (Debian package
``chromium``; or ``$QUANTCORE_CHROMIUM``) or Model Explorer (``quantcore[view]``)
is missing. The browser cannot reach the network (``--host-resolver-rules``): the
page must work offline.

``python tests/test_view_browser.py --docs docs/images`` regenerates the README
screenshots (a ``compare --numerics all`` overlay and a ``debug`` overlay).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
ARTIFACTS = Path(os.environ.get("QUANTCORE_ARTIFACTS") or ROOT / "tests" / "artifacts")
FLOAT = MODELS / "small_cnn_float32.tflite"
QUANT = MODELS / "small_cnn_int8.tflite"
CALIB = MODELS / "small_cnn_calib.npy"
PAGE_TIMEOUT = 90.0


def find_chromium() -> str | None:
    for c in (os.environ.get("QUANTCORE_CHROMIUM"), "chromium", "chromium-headless-shell",
              "chromium-browser", "google-chrome"):
        if c and shutil.which(c):
            return shutil.which(c)
    return None


def _skip_reason() -> str | None:
    if sys.platform == "win32":
        return "the DevTools pipe driver needs POSIX file descriptors"
    if find_chromium() is None:
        return "Chromium is not installed (Debian: apt-get install chromium; or set QUANTCORE_CHROMIUM)"
    if importlib.util.find_spec("model_explorer") is None:
        return "Model Explorer is not installed (pip install 'quantcore[view]')"
    return None


# ---------------------------------------------------------------------------
# a minimal DevTools-protocol client over --remote-debugging-pipe
# ---------------------------------------------------------------------------
class Chromium:
    """Headless Chromium with one page, driven over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, exe: str, width: int = 1400, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="quantcore-chromium-")
        to_r, to_w = os.pipe()        # we write commands, Chromium reads fd 3
        from_r, from_w = os.pipe()    # Chromium writes fd 4, we read

        def child_fds() -> None:
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",   # offline
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=child_fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._w = os.fdopen(to_w, "wb", buffering=0)
        self._r = os.fdopen(from_r, "rb", buffering=0)
        self._buf = b""
        self._id = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _message(self) -> dict:
        while b"\0" not in self._buf:
            chunk = self._r.read(1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._w.write(json.dumps(msg).encode() + b"\0")
        while True:
            m = self._message()
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def eval(self, expression: str):
        r = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}...: {r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r["result"].get("value")

    def goto(self, url: str) -> None:
        self.page("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = PAGE_TIMEOUT, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.eval(expression)
            if v:
                return v
            time.sleep(0.25)
        text = self.eval("document.body ? document.body.innerText : ''") or ""
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what or expression}; "
                             f"page text: {text[:500]!r}")

    def screenshot(self, path: Path | None = None, scale: float = 1.0) -> bytes:
        params: dict = {"format": "png"}
        if scale != 1.0:
            w, h = self.eval("[window.innerWidth, window.innerHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": w, "height": h, "scale": scale}
        png = base64.b64decode(self.page("Page.captureScreenshot", **params)["data"])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
        return png

    def count_colours(self, png: bytes, colours: list[str], box: tuple[int, int, int, int] | None = None) -> dict:
        """Pixels of each ``#rrggbb`` colour in ``png`` (decoded by the browser itself),
        inside ``box`` = (x0, y0, x1, y1) when given."""
        b64 = base64.b64encode(png).decode()
        return self.eval(f"""(async () => {{
            const img = new Image(); img.src = 'data:image/png;base64,{b64}'; await img.decode();
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
            const box = {json.dumps(list(box) if box else [0, 0, 1e9, 1e9])};
            const x0 = box[0], y0 = box[1], x1 = Math.min(box[2], img.width), y1 = Math.min(box[3], img.height);
            const d = ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data;
            const want = {json.dumps([c.lower() for c in colours])};
            const out = {{}}; for (const w of want) out[w] = 0;
            for (let i = 0; i < d.length; i += 4) {{
                const h = '#' + [d[i], d[i+1], d[i+2]].map(v => v.toString(16).padStart(2, '0')).join('');
                if (h in out) out[h]++;
            }}
            return out; }})()""")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# ---------------------------------------------------------------------------
# Model Explorer page helpers
# ---------------------------------------------------------------------------
#: The "Node data" side table: per row [#, node label, [[text, background], ...]]
#: and the column headers.
NODE_TABLE_JS = """(() => {
  const tables = [...document.querySelectorAll('table.results')];
  const t = tables.find(t => [...t.querySelectorAll('thead th, thead td')].some(h => /^\\s*#/.test(h.textContent)));
  if (!t) return null;
  const heads = [...t.querySelectorAll('thead th, thead td')].map(h => h.textContent.trim());
  const rows = [...t.querySelectorAll('tbody tr')].map(tr => {
    const tds = [...tr.querySelectorAll('td')];
    return [tds[0].textContent.trim(), tds[1].textContent.trim(),
            tds.slice(2).map(td => [td.textContent.trim(), getComputedStyle(td).backgroundColor])];
  });
  return {heads, rows};
})()"""


def open_model_explorer(browser: Chromium, url: str, expected_rows: int) -> dict:
    """Load the page, wait until the graph is drawn and the node-data table is filled,
    expand every layer, and return the table."""
    browser.goto(url)
    browser.wait_for("!!document.querySelector('canvas') && !document.body.innerText.includes('Processing graph')",
                     what="the graph")
    table = browser.wait_for(f"(() => {{ const t = {NODE_TABLE_JS}; return t && t.rows.length >= {expected_rows} "
                             f"&& t.rows.some(r => r[2].some(c => c[0] !== '-')) ? t : null; }})()",
                             what="the node-data table")
    browser.eval("(() => { const b = document.querySelector('.expand-all'); if (b) b.click(); "
                 "if (document.activeElement) document.activeElement.blur(); return true; })()")
    browser.eval("(() => { const s = document.createElement('style'); s.textContent = "
                 "'.cdk-overlay-container .mat-mdc-tooltip-panel, .cdk-overlay-container bubble-container "
                 "{ display: none !important; }'; "
                 "document.head.appendChild(s); return true; })()")                 # no tooltip in the shot
    time.sleep(1.5)     # the relayout animation
    return table


def rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return f"rgb({int(h[0:2], 16)}, {int(h[2:4], 16)}, {int(h[4:6], 16)})"


def threshold_colour(value, thresholds) -> str | None:
    for t in thresholds:
        if value <= t["value"]:
            return t["bgColor"]
    return None


def expected_cells(overlay: dict, graph: str, n_ops: int) -> list[tuple[str, str | None]]:
    """(value, colour) Model Explorer should show per operator for one overlay file."""
    g = overlay[graph]
    out = []
    for o in range(n_ops):
        r = g["results"].get(str(o))
        if r is None:
            out.append(("-", None))
            continue
        colour = r.get("bgColor")
        if colour is None and isinstance(r["value"], (int, float)):
            colour = threshold_colour(r["value"], g.get("thresholds", []))
        out.append((r["value"], colour))
    return out


def same_value(text: str, value) -> bool:
    if isinstance(value, str):
        return text == value
    try:
        return math.isclose(float(text), float(value), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return False


def start_view(model: Path, overlays: list[Path], port: int | None = None) -> tuple[subprocess.Popen, str]:
    """``quantcore view MODEL --overlay ... --host 127.0.0.1 --no-browser``; returns the
    process and the URL it printed."""
    from quantcore.view import free_port

    port = port or free_port("127.0.0.1")
    cmd = [sys.executable, "-m", "quantcore.cli", "view", str(model), "--overlay", *map(str, overlays),
           "--host", "127.0.0.1", "--port", str(port), "--no-browser"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    deadline = time.monotonic() + 90
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("http://127.0.0.1:"):
            return proc, line.strip()
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"quantcore view printed no URL: {''.join(lines)}{out}{err}")


def stop_view(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)            # Ctrl-C
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"quantcore view did not stop on Ctrl-C: {out}{err}")
    return proc.returncode, out + err


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------
pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if ARTIFACTS == ROOT / "tests" / "artifacts" and not ignore.exists():
        ignore.write_text("*\n")
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    b = Chromium(find_chromium())
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def debug_outputs(tmp_path_factory):
    from quantcore.cli import main

    d = tmp_path_factory.mktemp("debug")
    code = main(["debug", str(FLOAT), str(QUANT), "--data", str(CALIB), "--max-samples", "16",
                 "--model-explorer", str(d / "debug.json"), "--html", str(d / "report.html"),
                 "--json", str(d / "debug_result.json")])
    assert code == 0
    return d


def test_view_shows_debug_overlay_on_the_right_nodes(browser, debug_outputs, artifacts):
    from quantcore.schema import read_model
    model = read_model(QUANT)
    ops = model.subgraphs[0].operators
    primary = debug_outputs / "debug.json"            # local SQNR: colours the graph
    second = debug_outputs / "debug.lsb.json"
    proc, url = start_view(QUANT, [primary, second])
    port = int(re.match(r"http://127\.0\.0\.1:(\d+)/", url).group(1))
    try:
        table = open_model_explorer(browser, url, len(ops) + 2)
        png = browser.screenshot(artifacts / "view_debug_overlay.png")
        # the node-data table: GraphInputs, the operators in order, GraphOutputs
        rows = [r for r in table["rows"] if r[1] not in ("GraphInputs", "GraphOutputs")]
        assert [r[1] for r in rows] == [model.op_name(op).lower() for op in ops]
        heads = table["heads"][2:]
        for path in (primary, second):
            data = json.loads(path.read_text())
            name = data["main"]["name"]
            col = next(k for k, h in enumerate(heads) if name in h)
            for o, ((text, bg), (value, colour)) in enumerate(zip([r[2][col] for r in rows],
                                                                  expected_cells(data, "main", len(ops)))):
                assert same_value(text, value), (path.name, o, text, value)
                if colour is not None:
                    assert bg == rgb(colour), (path.name, o, text, bg, colour)
        # the graph is painted with the primary overlay's colours (left of the side panel)
        data = json.loads(primary.read_text())
        want = {c for _, c in expected_cells(data, "main", len(ops)) if c}
        width = browser.eval("window.innerWidth")
        counts = browser.count_colours(png, sorted(want), (0, 100, int(width * 0.7), 900))
        assert all(n > 200 for n in counts.values()), counts
        # a colour no node has is not painted
        from quantcore.overlays import RED
        if RED.lower() not in want:
            assert browser.count_colours(png, [RED], (0, 100, int(width * 0.7), 900))[RED.lower()] == 0
    finally:
        code, out = stop_view(proc)
    assert code == 0, out
    assert "stopping Model Explorer" in out
    with pytest.raises(ConnectionRefusedError):       # the server is gone
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_debug_html_report_table(browser, debug_outputs, artifacts):
    from quantcore.overlays import GREEN, RMSE_LSB_THRESHOLDS, SQNR_THRESHOLDS

    result = json.loads((debug_outputs / "debug_result.json").read_text())
    browser.goto((debug_outputs / "report.html").as_uri())
    browser.wait_for("document.readyState === 'complete' && !!document.querySelector('#layers')")
    rows = browser.eval("""[...document.querySelectorAll('#layers tbody tr')].map(tr => ({
        op: +tr.dataset.op, tensor: +tr.dataset.tensor,
        cells: Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.col,
               [td.textContent.trim(), getComputedStyle(td).backgroundColor]]))}))""")
    assert [(r["op"], r["tensor"]) for r in rows] == [(r["op_index"], r["tensor"]) for r in result["rows"]]
    local = [r["cells"]["local_sqnr_db"][0] for r in rows]
    finite = [float(v) for v in local if v not in ("exact", "-")]
    assert finite == sorted(finite)                      # worst (lowest local SQNR) first
    for r, j in zip(rows, result["rows"]):
        text, bg = r["cells"]["local_sqnr_db"]
        v = j["local_sqnr_db"]
        if v == "inf":
            assert (text, bg) == ("exact", rgb(GREEN))
        elif v is not None:
            assert text == f"{v:.2f}" and bg == rgb(threshold_colour(v, SQNR_THRESHOLDS))
        text, bg = r["cells"]["rmse_lsb"]
        assert text == f"{j['rmse_lsb']:.3f}" and bg == rgb(threshold_colour(j["rmse_lsb"], RMSE_LSB_THRESHOLDS))
    plot = browser.eval("(() => { const i = document.querySelector('#plot'); return i ? i.naturalWidth : null; })()")
    if importlib.util.find_spec("matplotlib") is not None:
        assert plot and plot > 100                        # the embedded PNG decodes
    else:
        assert browser.eval("!!document.querySelector('#plot-missing')")
    browser.screenshot(artifacts / "debug_report.png")


# ---------------------------------------------------------------------------
# README screenshots
# ---------------------------------------------------------------------------
def make_docs_images(out_dir: Path) -> list[Path]:
    """docs/images/model_explorer_compare_paths.png (``compare --numerics all`` on
    small_cnn_int8: XNNPACK disagrees with the reference and optimized paths) and
    docs/images/model_explorer_debug.png (``debug`` local SQNR)."""
    from quantcore.cli import main

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        assert main(["compare", str(QUANT), "--numerics", "all", "--model-explorer", str(d / "paths.json")]) in (0, 1)
        assert main(["debug", str(FLOAT), str(QUANT), "--data", str(CALIB), "--max-samples", "16",
                     "--model-explorer", str(d / "debug.json")]) == 0
        b = Chromium(find_chromium(), width=1300, height=1250)
        try:
            for name, overlays in (("model_explorer_compare_paths.png", [d / "paths.json", d / "paths.lsb.json"]),
                                   ("model_explorer_debug.png", [d / "debug.json", d / "debug.lsb.json"])):
                proc, url = start_view(QUANT, overlays)
                try:
                    open_model_explorer(b, url, 21)
                    b.screenshot(out_dir / name, scale=0.6)
                    written.append(out_dir / name)
                finally:
                    stop_view(proc)
        finally:
            b.close()
    return written


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--docs":
        reason = _skip_reason()
        if reason:
            sys.exit(reason)
        for p in make_docs_images(Path(sys.argv[2])):
            print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    else:
        sys.exit("usage: python tests/test_view_browser.py --docs docs/images")
