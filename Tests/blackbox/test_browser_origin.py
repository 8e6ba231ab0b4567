"""The Origin check against a real browser: headless Chromium loads a page from one origin, its
script opens a WebSocket to vigild, and both sides are asked what happened.

Raw-socket tests can send any Origin header; only a browser tells whether vigild refuses the one
a browser really sends (cross-site WebSocket hijacking is a browser attack), and whether a page
vigild admits can still talk. Each case checks the browser's view (open and echo, or error and
close 1006) and vigild's: the origin count in /metrics, the log line naming the origin and the
setting, and /closes showing the admitted page by its ?client= name.

Headless Chromium 156 sends `Origin: http://127.0.0.1:<page port>` for a page from
http://127.0.0.1:<page port>/ (scheme, host and port as in the page's address; `localhost` stays
`localhost`), next to `Host: 127.0.0.1:<vigild port>`, so by default every page from a server
other than vigild's own listener is another origin. Seen with a plain websockets server
recording the request's headers, and in vigild's 403 log lines below.
"""

import http.server
import threading
import urllib.parse

import pytest
import websockets
from websockets.sync.client import connect


ORIGIN_REFUSALS = 'vigil_handshakes_rejected_total{reason="origin"}'

# The page opens the WebSocket named by its ?ws= parameter and settles window.probe once the
# socket closes: an admitted page sends one message, waits for vigild's echo and closes with 1000.
PROBE_PAGE = b"""<!doctype html>
<title>origin probe</title>
<script>
window.probe = new Promise(resolve => {
  const seen = {opened: false, errored: false, echo: null, closeCode: null};
  const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
  ws.onopen = () => { seen.opened = true; ws.send("hello from " + location.origin); };
  ws.onmessage = event => { seen.echo = event.data; ws.close(1000, "done"); };
  ws.onerror = () => { seen.errored = true; };
  ws.onclose = event => { seen.closeCode = event.code; resolve(seen); };
  setTimeout(() => resolve(seen), 5000);
});
</script>
"""


class ProbeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the probe page at any path, never cached, so each navigation runs it afresh."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(PROBE_PAGE)))
        self.end_headers()
        self.wfile.write(PROBE_PAGE)

    def log_message(self, format, *args):
        pass  # keep pytest's output to vigild's lines


class Site:
    """One origin: an HTTP server on a kernel-chosen loopback port, named by `host` in URLs."""

    def __init__(self, host):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProbeHandler)
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def app_site():
    """The origin a deployment would allow: same host as vigild, another port."""
    site = Site("127.0.0.1")
    yield site
    site.close()


@pytest.fixture(scope="module")
def evil_site():
    """Another site the browser has open: another host name and port."""
    site = Site("localhost")
    yield site
    site.close()


def probe(page, site, daemon, client):
    """What the browser saw when a page from `site` opened a WebSocket to vigild as `client`."""
    target = urllib.parse.quote(daemon.ws(f"?client={client}"), safe="")
    page.navigate(f"{site.origin}/probe.html?ws={target}")
    return page.evaluate("window.probe")


def origin_refusals(daemon):
    return daemon.metrics().get(ORIGIN_REFUSALS, 0)


def assert_admitted(seen, site):
    assert seen == {"opened": True, "errored": False, "echo": f"hello from {site.origin}", "closeCode": 1000}, \
        f"a page from {site.origin} should connect and get its echo: {seen}"


def assert_refused(seen, site):
    assert seen == {"opened": False, "errored": True, "echo": None, "closeCode": 1006}, \
        f"a page from {site.origin} should be refused (error, close 1006, never open): {seen}"


def refusal_logged(daemon, site):
    """vigild's log line for refusing `site`: it names the page's origin and the setting."""
    entry = daemon.wait_for_log(lambda line: line.get("reason") == "origin" and site.origin in line["message"])
    assert entry["status"] == "403", entry
    assert "allowed_origins" in entry["message"], entry
    return entry


def closed_clients(daemon, count):
    return sorted(record["client"] for record in daemon.wait_closes(count))


def test_pages_from_other_origins_are_refused_by_default(vigild, page, app_site, evil_site):
    """Same origin only: a page on vigild's host but another port is refused, as is another host."""
    daemon = vigild()
    before = origin_refusals(daemon)
    for site, client in [(app_site, "app"), (evil_site, "evil")]:
        assert_refused(probe(page, site, daemon, client), site)
        entry = refusal_logged(daemon, site)
        assert "is not the same origin as Host 127.0.0.1:" in entry["message"], entry
        assert entry["uri"] == f"/ws?client={client}", entry
    assert origin_refusals(daemon) - before == 2, daemon.metrics()
    assert daemon.closes()["total"] == 0, "a refused handshake is not a connection"
    assert daemon.get_json("/connections")["count"] == 0


def test_an_allowed_origin_connects_and_another_is_refused(vigild, page, app_site, evil_site):
    daemon = vigild("--allowed-origins", app_site.origin)
    before = origin_refusals(daemon)
    assert_admitted(probe(page, app_site, daemon, "app"), app_site)
    assert_refused(probe(page, evil_site, daemon, "evil"), evil_site)
    entry = refusal_logged(daemon, evil_site)
    assert f"not in allowed_origins ({app_site.origin})" in entry["message"], entry
    assert origin_refusals(daemon) - before == 1, daemon.metrics()
    record = daemon.wait_closes(1)[0]
    assert (record["client"], record["code"], record["messages_in"]) == ("app", 1000, 1), record
    assert daemon.closes()["total"] == 1, "only the allowed page connected"


def test_a_star_admits_every_origin(vigild, page, app_site, evil_site):
    daemon = vigild("--allowed-origins", "*")
    for site, client in [(app_site, "app"), (evil_site, "evil")]:
        assert_admitted(probe(page, site, daemon, client), site)
    assert closed_clients(daemon, 2) == ["app", "evil"]
    assert origin_refusals(daemon) == 0, daemon.metrics()


def test_require_origin_keeps_browsers_and_refuses_clients_without_origin(vigild, page, app_site):
    """A browser always sends Origin, so require_origin locks out only non-browser clients."""
    daemon = vigild("--allowed-origins", app_site.origin, "--require-origin", "true")
    assert_admitted(probe(page, app_site, daemon, "app"), app_site)
    with pytest.raises(websockets.InvalidStatus) as refused:
        with connect(daemon.ws("?client=script"), open_timeout=5):  # websockets sends no Origin
            pass
    assert refused.value.response.status_code == 403
    assert b"require_origin" in refused.value.response.body
    assert origin_refusals(daemon) == 1, daemon.metrics()
    assert closed_clients(daemon, 1) == ["app"]
