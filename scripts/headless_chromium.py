"""Drive a headless Chromium through the Chrome DevTools Protocol, with no dependency.

The book's browser test and its PDF build need a real browser: MathJax must typeset every
formula, figures must load, and nothing may be fetched from outside the machine. This module
starts the system Chromium (Debian's ``chromium``) with ``--remote-debugging-pipe`` and speaks
the DevTools protocol over that pipe: JSON messages separated by NUL bytes on file descriptors
3 (commands) and 4 (replies and events). No websocket, no port, no browser download.

    with Chromium() as browser:
        page = browser.new_page(width=1280, height=800)
        page.goto("http://127.0.0.1:8000/index.html")
        print(page.evaluate("document.title"), page.requests, page.errors)
        page.screenshot(Path("index.png"))

Every page records the URL of each request it makes (``page.requests``) and every console
error, uncaught exception and failed load (``page.errors``). Host names other than the local
ones resolve to nothing, so even on a machine with internet access a page cannot reach out:
a stray CDN reference shows up as a recorded request and a failed load.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Flags of a quiet, reproducible headless browser: no first-run dialogs, no background
# traffic (updates, sync, metrics), no sandbox (CI runs as root), fonts at 1x.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
]


_TRAMPOLINE = """
import os, sys
read, write = int(sys.argv[1]), int(sys.argv[2])
os.dup2(read, 100); os.dup2(write, 101); os.close(read); os.close(write)
os.dup2(100, 3); os.dup2(101, 4); os.close(100); os.close(101)
os.execv(sys.argv[3], sys.argv[3:])
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a browser that cancels a request (a page left before its fonts arrived) breaks the
        # connection; that is not the book's error
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) while the block runs.

    Yields the base URL, ending in ``/``. Pages are read as a web server would serve them
    (relative links, ``search.html`` fetching ``searchindex.js``), not from ``file://``.
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def find_chromium() -> str:
    """Path of the Chromium executable: ``$CHROMIUM``, else the first one on ``PATH``."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError(
        "no Chromium found: install Debian's `chromium` (apt-get install chromium) "
        "or set CHROMIUM to the browser's executable")


class ProtocolError(RuntimeError):
    """A DevTools command failed, or the browser did not answer in time."""


class Chromium:
    """A headless Chromium process and its DevTools pipe.

    Arguments:
        executable: the browser; default ``find_chromium()``.
        timeout: seconds to wait for any one reply.
    """

    def __init__(self, executable: str | None = None, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="dgm-chromium-")
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # A tiny Python trampoline moves the two pipe ends onto descriptors 3 and 4, then
        # becomes Chromium: no preexec_fn (unsafe when the caller runs threads, as the tests'
        # HTTP server does), no shell (dash cannot redirect descriptors above 9).
        argv = [sys.executable, "-c", _TRAMPOLINE, str(commands_read), str(replies_write),
                executable or find_chromium(), *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile.name}", "about:blank"]
        self._process = subprocess.Popen(argv, pass_fds=(commands_read, replies_write),
                                         stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self._pages: dict[str, Page] = {}
        self.send("Browser.getVersion")  # fails here, with the log, if the browser did not start

    # -- protocol ------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ProtocolError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._dispatch(reply)

    def pump(self, seconds: float) -> None:
        """Record the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = self._read(deadline, allow_timeout=True)
            if message is None:
                return
            self._dispatch(message)

    def _read(self, deadline: float, allow_timeout: bool = False) -> dict | None:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(remaining, 0))
            if not ready:
                if allow_timeout:
                    return None
                raise ProtocolError(f"no answer from Chromium within {self.timeout} s"
                                    f"{self._log_tail()}")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise ProtocolError(f"Chromium closed its DevTools pipe{self._log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _dispatch(self, message: dict) -> None:
        page = self._pages.get(message.get("sessionId", ""))
        if page is not None and "method" in message:
            page._record(message["method"], message.get("params", {}))

    def _log_tail(self) -> str:
        self._log.flush()
        text = (Path(self._profile.name) / "chromium.log").read_text(errors="replace")
        return f"; its log ends with:\n{text[-2000:]}" if text.strip() else ""

    # -- pages ---------------------------------------------------------------------------
    def new_page(self, width: int = 1280, height: int = 800) -> Page:
        """A new tab whose window is ``width`` x ``height`` CSS pixels (a phone below 600)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, target, session["sessionId"])
        self._pages[page.session] = page
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        page.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        page.resize(width, height)
        return page

    def close(self) -> None:
        """Stop the browser and remove its temporary profile."""
        if self._process.poll() is None:
            try:
                self.send("Browser.close")
                self._process.wait(timeout=10)
            except (ProtocolError, OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Page:
    """One tab: navigation, JavaScript, screenshots, PDF, and what the page asked for."""

    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser, self.target, self.session = browser, target, session
        self.requests: list[str] = []  # every URL the page requested, in order
        self.errors: list[str] = []  # console errors, exceptions, failed loads
        self._pending: dict[str, str] = {}  # request id -> URL, still loading
        self._last_activity = time.monotonic()
        self._events: list[str] = []

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, session=self.session)

    def _record(self, method: str, params: dict) -> None:
        self._events.append(method)
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
            self._pending[params["requestId"]] = params["request"]["url"]
            self._last_activity = time.monotonic()
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            url = self._pending.pop(params["requestId"], "?")
            self._last_activity = time.monotonic()
            if method == "Network.loadingFailed" and not params.get("canceled"):
                self.errors.append(f"failed to load ({params.get('errorText')}): {url}")
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                self.errors.append(f"HTTP {status}: {params['response']['url']}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"uncaught exception: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['source']} error: {entry['text']} {entry.get('url', '')}")

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 600})

    def goto(self, url: str, timeout: float = 60.0, idle: float = 0.5) -> None:
        """Load ``url``, then wait until the network has been quiet for ``idle`` seconds and
        MathJax (when the page has it) has typeset everything."""
        self._events.clear()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise ProtocolError(f"could not open {url}: {result['errorText']}")
        self.wait_for(lambda: "Page.loadEventFired" in self._events, timeout, f"load of {url}")
        self.evaluate("window.MathJax && MathJax.startup && MathJax.startup.promise "
                      "? MathJax.startup.promise.then(() => true) : true")
        self.wait_for_network_idle(idle, timeout)

    def wait_for(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise ProtocolError(f"timed out after {timeout} s waiting for {what}")
            self.browser.pump(0.05)

    def wait_for_network_idle(self, idle: float = 0.5, timeout: float = 60.0) -> None:
        self.wait_for(lambda: not self._pending
                      and time.monotonic() - self._last_activity >= idle,
                      timeout, "the network to go idle")

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression (promises are awaited); raises on exceptions."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise ProtocolError(f"JavaScript error in {expression[:80]!r}: "
                                f"{details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 32000) -> Path:
        """Write a PNG of the viewport, or of the whole page (cut at ``max_height`` px).

        The whole page is taken by making the window as tall as the page, not with
        ``captureBeyondViewport``: that one re-lays the page out mid-capture and catches the
        theme's sidebar half way through its transition.
        """
        width, height = self.width, self.height
        if full_page:
            measure = ("document.body ? Math.max(document.documentElement.scrollHeight, "
                       "document.body.scrollHeight) : document.documentElement.scrollHeight")
            for _ in range(2):  # the page may get shorter once its window is taller
                self.resize(width, min(int(self.evaluate(measure)), max_height))
                self.browser.pump(0.3)
                self.wait_for_network_idle(0.3)
        try:
            data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        finally:
            if full_page:
                self.resize(width, height)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def print_pdf(self, path: Path, **options: Any) -> Path:
        """Print the page to ``path`` (A4 by default; ``options`` are Page.printToPDF's)."""
        params = {"paperWidth": 8.27, "paperHeight": 11.69, "printBackground": True,
                  "marginTop": 0.6, "marginBottom": 0.6, "marginLeft": 0.6, "marginRight": 0.6,
                  **options}
        data = self.send("Page.printToPDF", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
