"""Black-box harness: starts the real vigild binary on kernel-chosen ports and drives it."""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIGILD = os.environ.get("VIGILD", os.path.join(ROOT, ".build", "debug", "vigild"))
READY = re.compile(r"vigild ready ws=(wss?://[^\s\"]+|none) status=(http://[^\s\"]+)")


class Vigild:
    """One running vigild process: its URLs, its log lines, and helpers for the status API."""

    def __init__(self, args, env=None, preexec_fn=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        full_env.update(env or {})
        self.args = [VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                     "--log", "stderr", "--log-format", "json", "--log-level", "debug", *args]
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=full_env,
                                     preexec_fn=preexec_fn)
        self.lines = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(20):
            self.proc.kill()
            raise RuntimeError(f"vigild did not become ready: {self.args}\n" + "\n".join(self.lines))
        self.port = int(self.ws_url.split(":")[2].split("/")[0]) if self.ws_url != "none" else None
        self.host = "127.0.0.1"

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            match = READY.search(line)
            if match and not self._ready.is_set():
                self.ws_url, self.status_url = match.group(1), match.group(2)
                self._ready.set()

    def ws(self, query=""):
        return self.ws_url + query

    def get(self, path):
        """(status, headers, body bytes) of a GET on the status API."""
        try:
            with urllib.request.urlopen(self.status_url + path, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def get_json(self, path):
        status, _, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def closes(self, query=""):
        return self.get_json("/closes" + query)

    def pages(self, path):
        """Every item of a paged list (/closes, /connections), following `next`."""
        key = "closes" if path.startswith("/closes") else "connections"
        items = []
        while path:
            document = self.get_json(path)
            items += document[key]
            path = document["next"]
        return items

    def wait_closes(self, count, timeout=10.0, query=""):
        """The matching close records, newest first, once there are `count` (all pages)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            document = self.closes(query)
            if document["total"] >= count:
                if document["next"] is None:
                    return document["closes"]
                return self.pages("/closes" + (query + "&" if query else "?") + "limit=1000")
            time.sleep(0.02)
        raise AssertionError(f"expected {count} closes, have {self.closes(query)}")

    def metrics(self):
        """Prometheus samples as {'name{labels}': value}."""
        _, _, body = self.get("/metrics")
        samples = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples

    def json_logs(self):
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for_log(self, predicate, timeout=5.0):
        """The first JSON log entry matching `predicate`, waiting for the reader thread to see it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.json_logs():
                if predicate(entry):
                    return entry
            time.sleep(0.01)
        raise AssertionError("no matching log entry in:\n" + "\n".join(self.lines[-20:]))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture
def vigild():
    """Factory: vigild(*flags, env={...}, preexec_fn=...) starts a daemon that is stopped after the test."""
    started = []

    def start(*args, env=None, preexec_fn=None):
        daemon = Vigild(list(args), env, preexec_fn)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(signal.SIGKILL)


def rss_kib(pid):
    """A process's resident set, KiB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def rfc3339_ns(text):
    """Nanoseconds since the epoch of a status-API timestamp."""
    import datetime
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(moment.timestamp() * 1000)) * 1_000_000


def stalled_at(daemon, client, timeout=60):
    """When vigild last read from `client` (its `last_seen_at`, in epoch seconds), once that has
    stopped moving for a second: the stall, which write_timeout counts from (give or take the
    reads already under way when it began). How long a peer
    takes to fill the kernel's buffers up to it depends on how busy the machine is (0.8 s on a
    quiet one, over 5 s with eight busy loops beside it): the tests measure from vigild's own
    account of the stall, not from the connection's opening."""
    deadline = time.monotonic() + timeout
    last, steady_since = None, time.monotonic()
    while time.monotonic() < deadline:
        live = [c for c in daemon.get_json("/connections")["connections"] if c["client"] == client]
        if not live:
            return last
        seen = (live[0]["last_seen_at"], live[0]["bytes_in"])
        if seen != last:
            last, steady_since = seen, time.monotonic()
        elif time.monotonic() - steady_since >= 1.0:
            return rfc3339_ns(seen[0]) / 1e9
        time.sleep(0.1)
    raise AssertionError(f"{client} still being read after {timeout} s")


def free_port():
    """A loopback TCP port free when asked (another process may take it before it is bound)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_vigild(*args, env=None, timeout=10):
    """Runs vigild to completion (for start-up errors and --print-config)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    full_env.update(env or {})
    return subprocess.run([VIGILD, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (starting it is most of a browser test's time);
    missing, it skips the module's tests, or fails them under CI=true."""
    from chromium import Chromium, require_chromium
    with Chromium(require_chromium()) as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    """A fresh tab, closed after the test."""
    from chromium import DevToolsError
    page = browser.new_page()
    yield page
    try:
        page.close()
    except DevToolsError:
        pass  # a tab whose renderer is still busy may take its time; the browser goes at module end
