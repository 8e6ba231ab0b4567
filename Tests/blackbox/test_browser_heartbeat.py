"""The application-level heartbeat against a real browser: what protocol pings cannot see.

Chromium's network process answers WebSocket pings itself, so a page that is frozen in the
back/forward cache or stuck in JavaScript still answers them. With `app_ping_interval`, vigild
also sends `{"type":"ping"}` as a text message; the page's copy of clients/vigil-heartbeat.js
answers `{"type":"pong"}` while its JavaScript runs. Each case drives headless Chromium over the
DevTools protocol and reads vigild's records: a live page stays up (and never sees the app ping,
and vigild never echoes the pong), a busy page and a page navigated away from are closed as
`abnormal/app_pong_timeout` within interval + timeout while their protocol pongs keep coming.
"""

import http.server
import pathlib
import threading
import time
import urllib.parse

import pytest

from test_proxy import backend  # noqa: F401 - the fixture


SNIPPET = (pathlib.Path(__file__).resolve().parents[2] / "clients" / "vigil-heartbeat.js").read_text()
INTERVAL, TIMEOUT = 1.0, 1.0

# The page opens ?ws= with the snippet installed first, then its own listener, which records
# every message it is given: the app pings must never reach it.
PAGE = """<!doctype html>
<title>heartbeat page</title>
<script>
%s
window.seen = [];
window.opened = new Promise((resolve, reject) => {
  const ws = vigilHeartbeat(new WebSocket(new URLSearchParams(location.search).get("ws")));
  ws.addEventListener("message", event => window.seen.push(event.data));
  ws.onopen = () => { ws.send("hello"); resolve(true); };
  ws.onerror = () => reject(new Error("websocket error"));
  window.ws = ws;
});
// Blocks this page's JavaScript (and with it the snippet) from a timer, so that the DevTools
// call that starts it returns first.
window.startBusy = seconds => { setTimeout(() => { const end = Date.now() + seconds * 1000; while (Date.now() < end) {} }, 50); return true; };
</script>
""" % SNIPPET


class PageHandler(http.server.BaseHTTPRequestHandler):
    """The heartbeat page at /page.html; /away.html is somewhere else to go. `no_store` pages
    (path prefix /no-store/) are not kept in the back/forward cache."""

    def do_GET(self):
        body = (PAGE if "page.html" in self.path else "<!doctype html><title>away</title>elsewhere").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if self.path.startswith("/no-store/"):
            self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def heartbeat_daemon(vigild, site):
    return vigild("--allowed-origins", site, "--app-ping-interval", f"{INTERVAL:g}s", "--app-pong-timeout", f"{TIMEOUT:g}s",
                  "--ping-interval", "300ms", "--pong-timeout", "2s")


def open_page(page, site, daemon, client, prefix=""):
    target = urllib.parse.quote(daemon.ws(f"?client={client}"), safe="")
    page.navigate(f"{site}{prefix}/page.html?ws={target}")
    assert page.evaluate("window.opened") is True
    return live(daemon, client)


def live(daemon, client):
    """The open connection of `client`, waiting for it to be registered."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for connection in daemon.pages("/connections"):
            if connection["client"] == client:
                return connection
        time.sleep(0.02)
    raise AssertionError(f"no open connection for {client}")


def test_a_live_page_stays_up_and_never_sees_the_app_ping(vigild, page, site):
    daemon = heartbeat_daemon(vigild, site)
    open_page(page, site, daemon, "live")
    time.sleep(4 * INTERVAL + 0.5)
    connection = live(daemon, "live")
    assert connection["app_pongs_received"] >= 3, connection
    assert connection["app_pings_sent"] - connection["app_pongs_received"] <= 1, connection
    assert connection["app_rtt_ms"] is not None and connection["app_rtt_ms"] < 1000 * TIMEOUT, connection
    assert connection["messages_in"] == 1 and connection["messages_out"] == 1, "only hello and its echo count"
    assert page.evaluate("window.seen") == ["hello"], "the snippet keeps pings from the page, vigild echoes no pong"
    assert daemon.closes()["total"] == 0
    page.evaluate("window.ws.close(1000, 'done'), true")
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["cause"]) == ("normal", "peer_close"), record
    assert record["last_app_rtt_ms"] is not None, record
    entry = daemon.wait_for_log(lambda line: line.get("ws_client") == "live" and "ws_close_kind" in line)
    assert float(entry["ws_app_rtt_ms"]) == pytest.approx(record["last_app_rtt_ms"]), "the log line (journal: WS_APP_RTT_MS) has it too"
    metrics = daemon.metrics()
    assert metrics["vigil_app_rtt_seconds_count"] >= 3, "the app round trips have their own histogram"


def test_a_page_stuck_in_javascript_is_closed_though_its_browser_answers_pings(vigild, page, site):
    daemon = heartbeat_daemon(vigild, site)
    before = open_page(page, site, daemon, "busy")
    assert page.evaluate("window.startBusy(30)") is True
    started = time.monotonic()
    # While the page is blocked, protocol pongs (every 300 ms) keep coming from the network
    # process: the last look at the connection before it closes says so.
    latest = before
    while time.monotonic() - started < INTERVAL + TIMEOUT + 5 and daemon.closes()["total"] == 0:
        latest = next((c for c in daemon.pages("/connections") if c["client"] == "busy"), latest)
        time.sleep(0.1)
    assert latest["pongs_received"] > before["pongs_received"], "protocol pongs keep coming from the network process"
    record = daemon.wait_closes(1, timeout=INTERVAL + TIMEOUT + 5)[0]
    elapsed = time.monotonic() - started
    assert (record["kind"], record["cause"], record["initiator"]) == ("abnormal", "app_pong_timeout", "vigild"), record
    assert elapsed <= INTERVAL + TIMEOUT + 1.0, f"closed {elapsed:.1f}s after the page blocked"
    entry = daemon.wait_for_log(lambda line: line.get("ws_close_cause") == "app_pong_timeout")
    assert entry["ws_client"] == "busy" and entry["ws_close_initiator"] == "vigild", entry


def test_a_page_navigated_away_from_is_closed_as_app_pong_timeout(vigild, page, site):
    """Served without Cache-Control: no-store, the page goes into the back/forward cache with
    its WebSocket open; frozen, only the app heartbeat notices."""
    daemon = heartbeat_daemon(vigild, site)
    open_page(page, site, daemon, "left")
    page.navigate(f"{site}/away.html")
    left = time.monotonic()
    record = daemon.wait_closes(1, timeout=INTERVAL + TIMEOUT + 5)[0]
    elapsed = time.monotonic() - left
    assert (record["kind"], record["cause"]) == ("abnormal", "app_pong_timeout"), record
    assert elapsed <= INTERVAL + TIMEOUT + 1.0, f"closed {elapsed:.1f}s after navigating away"


def test_a_no_store_page_says_going_away_at_once(vigild, page, site):
    """The contrast: a page that cannot be cached is unloaded, and Chromium sends 1001."""
    daemon = heartbeat_daemon(vigild, site)
    open_page(page, site, daemon, "unloaded", prefix="/no-store")
    page.navigate(f"{site}/away.html")
    record = daemon.wait_closes(1, timeout=5)[0]
    assert (record["kind"], record["code"], record["initiator"]) == ("going_away", 1001, "peer"), record


def test_through_the_proxy_a_compressing_page_answers_and_the_backend_stays_in_step(vigild, page, site, backend):
    """permessage-deflate passed through with the app heartbeat on: vigild answers Chromium with
    the backend's agreement plus client_no_context_takeover, so the page's pongs, which Chromium
    compresses, can be taken out of the stream (inflated on the client leg, being small, while
    a ping is out) without the backend's inflater, which keeps its context, losing step: a
    message the page sends after the pongs still reaches the backend and comes back whole."""
    upstream = backend(compression=True)
    daemon = vigild("--mode", "proxy", "--upstream", upstream.url(), "--allowed-origins", site, "--app-ping-interval",
                    f"{INTERVAL:g}s", "--app-pong-timeout", f"{TIMEOUT:g}s", "--ping-interval", "300ms",
                    "--pong-timeout", "2s")
    open_page(page, site, daemon, "compressing")
    extensions = page.evaluate("window.ws.extensions")
    assert extensions.startswith("permessage-deflate") and "client_no_context_takeover" in extensions, extensions
    time.sleep(3 * INTERVAL + 0.5)
    connection = next(c for c in daemon.pages("/connections") if c["client"] == "compressing" and c["leg"] == "client")
    assert connection["app_pongs_received"] >= 2, connection
    assert connection["compressed_in"] >= 1 + connection["app_pongs_received"], "Chromium compressed its pongs"
    text = "a message after the pongs, compressed with the same inflater on the backend " * 8
    page.evaluate(f"window.ws.send({text!r}), true")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(page.evaluate("window.seen")) < 2:
        time.sleep(0.05)
    assert page.evaluate("window.seen") == ["hello", text], "echoed whole; no pong reached the backend"
    assert daemon.closes()["total"] == 0
    page.evaluate("window.ws.close(1000, 'done'), true")
    legs = {r["leg"]: r for r in daemon.wait_closes(2)}
    assert (legs["client"]["kind"], legs["upstream"]["kind"]) == ("normal", "normal"), legs
    assert legs["upstream"]["compression"] == extensions.replace("; client_no_context_takeover", ""), legs
