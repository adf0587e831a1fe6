"""``quantcore view``: open a model and quantcore overlays in Model Explorer, offline.

:func:`serve` starts Model Explorer's server (``pip install 'quantcore[view]'``,
package ``ai-edge-model-explorer``) in a child process with the model and the overlay
files (:mod:`quantcore.overlays`), waits until it answers, prints the URL that opens
the model with its overlays, optionally opens it in the default browser, and stops
the server on Ctrl-C.

Offline: Model Explorer's server asks PyPI and GitHub for a newer release when it
starts and whenever the page asks; the child replaces that check (a module-level
function, ``model_explorer.server._check_new_version``) by one that answers "no
update" without a network call. The page itself needs nothing from the network (its
web font falls back to a local one).

Security: Model Explorer's server reads any file the user can read when the page
asks for it (that is how it loads models and overlays by path). It listens on
127.0.0.1 by default; another ``--host`` makes those files readable from the
network, and quantcore says so.

The child is started in its own session, so a Ctrl-C in the terminal reaches only
quantcore, which then stops the child (SIGTERM, then SIGKILL after 5 s); the child
also exits when quantcore's process goes away.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from typing import Iterable, TextIO

from quantcore.errors import InputError, QuantcoreError

VIEW_HINT = "pip install 'quantcore[view]'"
ADAPTER_ID = "builtin_tflite_flatbuffer"
DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT = 60.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ViewUnavailableError(QuantcoreError):
    """Model Explorer (the ``view`` extra) is not installed."""


def require_model_explorer() -> None:
    """Raise :class:`ViewUnavailableError` naming the extra when Model Explorer is missing."""
    try:
        import model_explorer  # noqa: F401
        import model_explorer.server  # noqa: F401
    except ImportError:
        raise ViewUnavailableError("viewing needs Model Explorer (ai-edge-model-explorer), which is not "
                                   f"installed: {VIEW_HINT}") from None


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on at ``host`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def view_url(host: str, port: int, model: str | os.PathLike, overlays: Iterable[str | os.PathLike] = ()) -> str:
    """The URL that opens ``model`` with ``overlays`` in a running Model Explorer:
    ``http://HOST:PORT/?data=`` + the URL-encoded JSON
    ``{"models": [{"url": ABS_PATH, "adapterId": ...}], "nodeData": [ABS_JSON, ...],
    "nodeDataTargets": [MODEL_BASENAME, ...]}`` (Model Explorer's own format). The
    first overlay colours the graph; the others are columns of the side tables."""
    path = os.path.abspath(os.fspath(model))
    data: dict = {"models": [{"url": path, "adapterId": ADAPTER_ID}]}
    # Model Explorer selects (colours the graph with) the run it adds last: the
    # first overlay goes last so that it is the one shown
    files = [os.path.abspath(os.fspath(o)) for o in overlays][::-1]
    if files:
        data["nodeData"] = files
        data["nodeDataTargets"] = [os.path.basename(path)] * len(files)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?data={urllib.parse.quote(json.dumps(data))}"


def check_overlay(path: str | os.PathLike, model_path: str | os.PathLike) -> list[str]:
    """Read an overlay file; raise InputError when it is not node data, and return
    warnings (e.g. no graph id of this model in it)."""
    from quantcore.overlays import graph_ids
    from quantcore.schema import read_model

    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except OSError as e:
        raise InputError(f"cannot read overlay {os.fspath(path)!r}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"overlay {os.fspath(path)!r} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"overlay {os.fspath(path)!r} is not Model Explorer node data (not an object)")
    if isinstance(data.get("results"), dict) and "results" not in data["results"]:
        return []                      # a bare per-graph file: applies to the graph shown
    ids = graph_ids(read_model(model_path))
    bad = [k for k, v in data.items() if not isinstance(v, dict) or not isinstance(v.get("results"), dict)]
    if bad:
        raise InputError(f"overlay {os.fspath(path)!r} is not Model Explorer node data: {bad[0]!r} has no "
                         "'results' object")
    if not set(data) & set(ids):
        return [f"overlay {os.fspath(path)!r} has data for graphs {sorted(data)[:3]}, this model's graphs "
                f"are {ids[:3]}: it was made for another model"]
    return []


class ModelExplorerServer:
    """Model Explorer's server for one model and its overlays, in a child process.

    ``with ModelExplorerServer(model, overlays) as srv: print(srv.url)``; the server
    is ready (answers ``/check_health``) when the ``with`` body starts.
    """

    def __init__(self, model: str | os.PathLike, overlays: Iterable[str | os.PathLike] = (), *,
                 host: str = DEFAULT_HOST, port: int | None = None, timeout: float = START_TIMEOUT) -> None:
        require_model_explorer()
        self.model = os.path.abspath(os.fspath(model))
        if not os.path.isfile(self.model):
            raise InputError(f"model file {os.fspath(model)!r} does not exist")
        self.overlays = [os.path.abspath(os.fspath(o)) for o in overlays]
        for o in self.overlays:
            if not os.path.isfile(o):
                raise InputError(f"overlay file {o!r} does not exist")
        self.host = host
        if port is None:
            port = free_port(host)
        elif not 0 < int(port) < 65536:
            raise InputError(f"--port must be 1..65535, not {port}")
        elif _port_in_use(host, int(port)):
            raise InputError(f"port {port} on {host} is already in use")
        self.port = int(port)
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self._log: tempfile._TemporaryFileWrapper | None = None

    @property
    def url(self) -> str:
        return view_url(self.host, self.port, self.model, self.overlays)

    @property
    def base_url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def start(self) -> "ModelExplorerServer":
        self._log = tempfile.NamedTemporaryFile(prefix="quantcore-view-", suffix=".log", delete=False)
        env = dict(os.environ)
        env["NO_PROXY"] = env["no_proxy"] = ",".join(
            [v for v in (env.get("NO_PROXY") or env.get("no_proxy") or "").split(",") if v]
            + ["127.0.0.1", "localhost", "::1"])
        env.setdefault("PYTHONUNBUFFERED", "1")
        cmd = [sys.executable, "-m", "quantcore.view", "--child", str(os.getpid()), self.host,
               str(self.port), self.model, *self.overlays]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _health(self) -> bool:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("::1" if self.host == "::" else self.host)
        shown = f"[{host}]" if ":" in host else host
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://{shown}:{self.port}/check_health", timeout=2) as r:
                return r.read().decode(errors="replace").strip() == "model_explorer_ok"
        except OSError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise QuantcoreError(f"Model Explorer's server stopped while starting: {self.log_tail()}")
            if self._health():
                return
            time.sleep(0.2)
        raise QuantcoreError(f"Model Explorer's server did not answer within {self.timeout:g} s: "
                             f"{self.log_tail()}")

    def log_tail(self, n: int = 600) -> str:
        if self._log is None:
            return ""
        try:
            with open(self._log.name, "rb") as fh:
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        return " ".join(text[-n:].split()) or "(no output)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            try:
                os.unlink(self._log.name)
            except OSError:
                pass
            self._log = None

    def __enter__(self) -> "ModelExplorerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(model: str | os.PathLike, overlays: Iterable[str | os.PathLike] = (), *, host: str = DEFAULT_HOST,
          port: int | None = None, open_browser: bool = True, out: TextIO | None = None) -> int:
    """Start Model Explorer with ``model`` and ``overlays``, print the URL, open it
    (unless ``open_browser`` is False) and serve until Ctrl-C; returns 0 when stopped
    by Ctrl-C, 1 when the server stopped by itself."""
    out = out or sys.stdout
    overlays = list(overlays)
    require_model_explorer()
    for o in overlays:
        for w in check_overlay(o, model):
            print(f"quantcore: warning: {w}", file=sys.stderr)
    if host not in _LOOPBACK:
        print(f"quantcore: warning: listening on {host}: Model Explorer's server reads any file this user "
              "can read when asked, and anyone who reaches this address can ask", file=sys.stderr)
    srv = ModelExplorerServer(model, overlays, host=host, port=port)
    previous = _stop_on_signals()
    try:
        srv.start()
        print(f"Model Explorer: {os.path.basename(srv.model)}"
              + (f" with {len(overlays)} overlay(s)" if overlays else "")
              + f", serving on {srv.base_url} (offline; Ctrl-C stops it)", file=out)
        print(srv.url, file=out)
        out.flush()
        if open_browser:
            _open_browser(srv.url, out)
        while srv.alive():
            time.sleep(0.5)
        print(f"quantcore: Model Explorer's server stopped: {srv.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Model Explorer", file=out)
        return 0
    finally:
        srv.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _open_browser(url: str, out: TextIO) -> None:
    """Open ``url`` in a graphical browser. Without a display (a Linux box over ssh, a
    container) Python's webbrowser would start a text browser in this terminal:
    say so instead."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print("no graphical display here: open the URL above in a browser (for a remote machine, forward "
              "the port, e.g. ssh -L PORT:127.0.0.1:PORT)", file=out)
        return
    import webbrowser
    try:
        if not webbrowser.open(url):
            print("could not start a browser: open the URL above", file=out)
    except Exception:  # noqa: BLE001 - no browser: the URL is printed
        print("could not start a browser: open the URL above", file=out)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_on_signals() -> dict:
    """SIGTERM and SIGHUP stop the server like Ctrl-C does (so its temporary files go
    too); returns the previous handlers. Only in the main thread."""
    previous = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, _interrupt)
    return previous


def show(model_path: str | os.PathLike, overlays: list, *, paths: list[str] | None = None,
         host: str = DEFAULT_HOST, port: int | None = None, open_browser: bool = True,
         out: TextIO | None = None) -> int:
    """Serve ``model_path`` with :class:`quantcore.overlays.Overlay` objects: the
    files already written at ``paths``, else written to a temporary directory that
    lives as long as the server (``debug --view``, ``compare --view``)."""
    require_model_explorer()
    if paths is not None:
        return serve(model_path, paths, host=host, port=port, open_browser=open_browser, out=out)
    from quantcore.overlays import write_overlays
    from quantcore.schema import read_model

    with tempfile.TemporaryDirectory(prefix="quantcore-view-") as d:
        stem = os.path.splitext(os.path.basename(os.fspath(model_path)))[0]
        written = write_overlays(overlays, read_model(model_path), os.path.join(d, f"{stem}.json"))
        return serve(model_path, written, host=host, port=port, open_browser=open_browser, out=out)


# ---------------------------------------------------------------------------
# the child process
# ---------------------------------------------------------------------------
def _no_update_check(print_msg: bool = True) -> dict:
    """Stands in for Model Explorer's release check: no network call, no update."""
    return {"version": "", "runningVersion": "", "releaseUrl": "", "desktopAppUrl": ""}


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _child(argv: list[str]) -> None:
    parent, host, port, model, *overlays = argv
    import model_explorer
    from model_explorer import server

    server._check_new_version = _no_update_check       # offline: no PyPI/GitHub query
    threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    config = model_explorer.config()
    config.add_model_from_path(model, adapterId=ADAPTER_ID)
    for o in overlays:
        config.add_node_data_from_path(o, model_name=os.path.basename(model))
    server.start(host=host, port=int(port), config=config, no_open_in_browser=True, skip_health_check=True)


if __name__ == "__main__":
    if len(sys.argv) > 5 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        print("internal entry point of `quantcore view`; run `quantcore view MODEL` instead", file=sys.stderr)
        sys.exit(2)
