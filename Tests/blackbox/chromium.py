"""Headless Chromium for black-box tests, driven over the DevTools protocol.

Tests that need a real browser (the Origin a page's WebSocket sends, what a status page looks
like) use this instead of a WebDriver stack: Debian's `chromium` package and the `websockets`
client the suite already has are all it needs.

    with Chromium() as browser:
        page = browser.new_page()
        page.navigate("http://127.0.0.1:8123/")
        assert page.evaluate("document.title") == "vigild"
        page.screenshot("/tmp/status.png")

In a test, `require_chromium()` turns a missing browser into a skip on a developer's machine
and into a failure under CI=true, where a skipped browser test would pass unnoticed.
"""

import base64
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from websockets.sync.client import connect

# The Debian wrapper /usr/bin/chromium adds flags from /etc/chromium.d; the binary behind it
# takes ours as they are.
CANDIDATES = ["/usr/lib/chromium/chromium", "chromium", "chromium-browser"]
INSTALL_HINT = "apt-get install -y chromium"

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-extensions", "--disable-sync",
]


class ChromiumMissing(RuntimeError):
    """No Chromium binary on this machine."""


class DevToolsError(RuntimeError):
    """The browser answered a DevTools call with an error, or not in time."""


class JavaScriptError(RuntimeError):
    """A `Page.evaluate` expression threw or its promise rejected."""


def find_chromium():
    """Path of the Chromium binary: $CHROMIUM if set, else the first of CANDIDATES found; or None."""
    names = [os.environ["CHROMIUM"]] if os.environ.get("CHROMIUM") else CANDIDATES
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium():
    """The Chromium path, or skip the calling test (fail it under CI=true) saying how to install it."""
    import pytest

    path = find_chromium()
    if path is None:
        tried = f"CHROMIUM={os.environ['CHROMIUM']}" if os.environ.get("CHROMIUM") else ", ".join(CANDIDATES)
        message = f"chromium not found (tried {tried}): {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class DevTools:
    """One DevTools WebSocket: calls matched to replies by id, events queued for `wait_event`."""

    def __init__(self, url, timeout=10.0):
        # No Origin header (Chromium refuses DevTools clients that send one it was not told to
        # allow); no size cap, as screenshots arrive as one base64 message of megabytes.
        # Entered as a context manager, which websockets 17 asks of long-lived connections too.
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(url, open_timeout=timeout, max_size=None, compression=None))
        self.timeout = timeout
        self.next_id = 0
        self.events = collections.deque(maxlen=10_000)

    def call(self, method, params=None, session_id=None, timeout=None):
        """The `result` of one DevTools command; raises DevToolsError on an error reply or time-out."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline, f"reply to {method}")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)
            # Anything else is a late reply to a call that timed out: dropped.

    def wait_event(self, method, session_id=None, timeout=None):
        """The `params` of the first queued or next event `method` (of `session_id`, if given)."""
        def wanted(event):
            return event["method"] == method and (session_id is None or event.get("sessionId") == session_id)

        for event in list(self.events):
            if wanted(event):
                self.events.remove(event)
                return event.get("params", {})
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            event = self._receive(deadline, f"event {method}")
            if "method" not in event:
                continue
            if wanted(event):
                return event.get("params", {})
            self.events.append(event)

    def discard_events(self, method, session_id=None):
        """Forgets queued `method` events, so that `wait_event` sees only later ones."""
        for event in list(self.events):
            if event["method"] == method and (session_id is None or event.get("sessionId") == session_id):
                self.events.remove(event)

    def _receive(self, deadline, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DevToolsError(f"timed out waiting for {what}")
        try:
            return json.loads(self.ws.recv(timeout=remaining))
        except TimeoutError:
            raise DevToolsError(f"timed out waiting for {what}") from None

    def close(self):
        self.stack.close()


class Page:
    """One browser tab, attached with a flattened session."""

    def __init__(self, devtools, target_id, session_id):
        self.devtools = devtools
        self.target_id = target_id
        self.session_id = session_id

    def call(self, method, params=None, timeout=None):
        return self.devtools.call(method, params, self.session_id, timeout)

    def navigate(self, url, timeout=10.0):
        """Loads `url` and returns once its load event fired (scripts in the page have run)."""
        self.devtools.discard_events("Page.loadEventFired", self.session_id)
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise DevToolsError(f"navigating to {url} failed: {result['errorText']}")
        self.devtools.wait_event("Page.loadEventFired", self.session_id, timeout)

    def evaluate(self, expression, timeout=10.0):
        """The value of `expression`, awaited if it is a promise; JavaScriptError if it throws."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise JavaScriptError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    def screenshot(self, path, timeout=10.0):
        """Writes a PNG of the viewport to `path`."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, timeout)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))
        return path

    def close(self):
        self.devtools.call("Target.closeTarget", {"targetId": self.target_id})


class Chromium:
    """A headless Chromium in its own process group and profile directory, gone after `close()`."""

    def __init__(self, executable=None, timeout=20.0, flags=()):
        """`flags`: more command-line flags, after the usual ones."""
        executable = executable or find_chromium()
        if executable is None:
            raise ChromiumMissing(f"chromium not found: {INSTALL_HINT}")
        self.profile = tempfile.TemporaryDirectory(prefix="vigil-chromium-", ignore_cleanup_errors=True)
        directory = self.profile.name
        # HOME inside the profile: crashpad and friends write ~/.config/chromium otherwise.
        env = dict(os.environ, HOME=directory)
        self.log_path = os.path.join(directory, "chromium.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [executable, *FLAGS, *flags, f"--user-data-dir={directory}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            self.devtools = DevTools(self._devtools_url(directory, timeout))
        except BaseException:
            self._kill()
            raise

    def _devtools_url(self, directory, timeout):
        """The browser's DevTools WebSocket from DevToolsActivePort (port, then path)."""
        path = os.path.join(directory, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with open(path) as file:
                    lines = file.read().splitlines()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"chromium wrote no {path} within {timeout}s:\n{self.log()}")

    def log(self):
        """What Chromium printed so far (for failure messages)."""
        with open(self.log_path, errors="replace") as file:
            return file.read()[-4000:]

    def new_page(self):
        """A fresh tab on about:blank, with Page and Runtime events on."""
        target_id = self.devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = self.devtools.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self.devtools, target_id, session_id)
        page.call("Page.enable")
        page.call("Runtime.enable")
        return page

    def _kill(self):
        """Ends the whole process group: the browser, then any renderer or crashpad helper left."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # killed helpers linger a moment until init reaps them
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.profile.cleanup()

    def close(self):
        try:
            self.devtools.close()
        finally:
            self._kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
