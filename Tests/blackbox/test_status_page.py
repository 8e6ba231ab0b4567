"""The live status page (`GET /`) in a real browser: headless Chromium over the DevTools protocol.

The test causes closes of several kinds and holds live connections, then reads what the page
shows and compares it with the API the page is built from: state, connections now, closes by
kind (last minute, last hour, since start), causes in a table and per minute in a chart, the live table and the recent closes. It
also checks that the page loads nothing from elsewhere (it must work offline), that a hostile
close reason is shown as text, that the table filters and sorts, that proxied pairs and monitor
targets appear when present, and that a token-protected API is read with `/#token=`. A
screenshot is kept as a test artefact (`$VIGIL_ARTIFACTS`, default .build/test-artifacts/).
"""

import asyncio
import contextlib
import json
import os
import time

import pytest
from websockets.sync.client import connect as sync_connect

from conftest import ROOT
from test_close_table import raw_eof, raw_truncated, ws_close_with

ARTIFACTS = os.environ.get("VIGIL_ARTIFACTS", os.path.join(ROOT, ".build", "test-artifacts"))
KINDS = ["normal", "going_away", "abnormal", "eof", "error"]
HOSTILE = '<img src=x onerror="window.pwned=1">'

# What the page shows, read from its DOM (text only, as a reader sees it).
READ_PAGE = """(() => {
  const text = id => document.getElementById(id)?.textContent;
  const kinds = {};
  for (const kind of %s) kinds[kind] = [text("kind-minute-" + kind), text("kind-hour-" + kind), text("kind-total-" + kind)].map(Number);
  const causes = {};
  for (const row of document.querySelectorAll("#causes tbody tr")) causes[row.dataset.cause] = Number(row.cells[1].textContent);
  // The causes chart: each row's name and count as written, and its cells by minute.
  const causeMinutes = {};
  for (const row of document.querySelectorAll("#causes-chart g[data-cause]")) {
    const cells = {};
    for (const cell of row.querySelectorAll("rect[data-count]")) cells[cell.dataset.minute] = Number(cell.dataset.count);
    causeMinutes[row.querySelector("text").textContent] = cells;
  }
  return {
    updates: Number(document.body.dataset.updates), state: text("state"), connections: Number(text("connections-now")),
    total: Number(text("closes-total")), kinds, causes, cause_minutes: causeMinutes,
    rows: [...document.querySelectorAll("#connections tbody tr")].map(row => Number(row.dataset.id)),
    closes: [...document.querySelectorAll("#closes tbody tr")].map(row => Number(row.dataset.seq)),
    feed: text("feed"), error: document.getElementById("error").hidden ? null : text("error"),
  };
})()""" % json.dumps(KINDS)


@pytest.fixture
def page(page):
    """The shared tab, recording its requests, at a desktop size for the screenshot."""
    page.call("Network.enable")
    page.call("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1250, "deviceScaleFactor": 1, "mobile": False})
    return page


def what_the_api_says(daemon):
    status = daemon.get_json("/status")
    history = daemon.get_json("/history")
    hour = {kind: sum(m["closes"].get(kind, 0) for m in history["minutes"]) for kind in KINDS}
    causes, cause_minutes = {}, {}
    for minute in history["minutes"]:
        for cause, count in minute["causes"].items():
            causes[cause] = causes.get(cause, 0) + count
            cause_minutes.setdefault(cause, {})[minute["start"]] = count
    return {
        "state": status["state"], "connections": status["connections"], "total": status["closes_total"],
        "kinds": {kind: [status["closes_last_minute"][kind], hour[kind], status["closes"][kind]] for kind in KINDS},
        "causes": causes or {"none": 0},
        "cause_minutes": {f"{cause} {causes[cause]}": cells for cause, cells in cause_minutes.items()},
        "rows": sorted(c["id"] for c in daemon.pages("/connections")),
        "closes": [r["seq"] for r in daemon.closes("?limit=100")["closes"]],
    }


def page_matches_api(page, daemon, timeout=10):
    """The page's numbers, once they equal the API's (the page refreshes every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        expected = what_the_api_says(daemon)
        shown = page.evaluate(READ_PAGE)
        seen = {key: shown[key] for key in expected}
        seen["rows"] = sorted(seen["rows"])
        if seen == expected:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"the page shows {seen}\nthe API says {expected}\n(page error: {shown['error']})")
        time.sleep(0.2)


def requests_made(page):
    return [event["params"]["request"]["url"] for event in page.devtools.events
            if event["method"] == "Network.requestWillBeSent" and event.get("sessionId") == page.session_id]


def test_the_page_shows_what_the_api_says_and_loads_nothing_else(vigild, page):
    daemon = vigild("--ping-interval", "300ms")
    with contextlib.ExitStack() as held:
        for n in range(2):
            held.enter_context(sync_connect(daemon.ws(f"?client=keep-{n}")))
        page.navigate(daemon.status_url + "/")
        assert page.evaluate("document.title") == "vigild status"
        first = page_matches_api(page, daemon)
        assert first["connections"] == 2 and first["total"] == 0

        asyncio.run(ws_close_with(daemon, "fine", 1000, "bye"))
        asyncio.run(ws_close_with(daemon, "app-error", 4001, HOSTILE))
        raw_eof(daemon)
        raw_truncated(daemon)
        daemon.wait_closes(4)
        shown = page_matches_api(page, daemon)
        assert shown["kinds"]["normal"] == [1, 1, 1] and shown["kinds"]["error"] == [1, 1, 1], shown
        assert shown["kinds"]["eof"][2] == 1 and shown["kinds"]["abnormal"][2] == 1, shown
        assert shown["causes"] == {"peer_close": 2, "eof": 1, "truncated_frame": 1}, shown
        assert sorted(shown["cause_minutes"]) == ["eof 1", "peer_close 2", "truncated_frame 1"], shown
        assert all(sum(cells.values()) == int(name.split()[1]) for name, cells in shown["cause_minutes"].items())
        assert shown["feed"] == "live", "recent closes arrive over /closes/stream"

        # A close reason is the peer's text: shown as text, never run or loaded.
        reasons = page.evaluate("[...document.querySelectorAll('#closes td.reason')].map(td => td.textContent)")
        assert HOSTILE in reasons, reasons
        assert page.evaluate("window.pwned === undefined && document.querySelectorAll('main img').length === 0")

        # Filter and sort the live table as a reader would.
        page.evaluate("(() => { const f = document.getElementById('filter'); f.value = 'client=keep-1'; f.dispatchEvent(new Event('input')); })()")
        assert page.evaluate("document.querySelectorAll('#connections tbody tr').length") == 1
        page.evaluate("(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()")
        page.evaluate("document.querySelector('#connections th[data-sort=id]').click()")  # id was ascending: now descending
        ids = page.evaluate("[...document.querySelectorAll('#connections tbody tr')].map(r => Number(r.dataset.id))")
        assert ids == sorted(ids, reverse=True) and len(ids) == 2, ids
        rtts = page.evaluate("[...document.querySelectorAll('#rtt tbody tr')].map(r => [r.cells[0].textContent, Number(r.cells[1].textContent)])")
        assert sum(count for _, count in rtts) == 2, rtts

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = page.screenshot(os.path.join(ARTIFACTS, "status-page.png"))
        with open(shot, "rb") as file:
            assert file.read(8) == b"\x89PNG\r\n\x1a\n"
        assert os.path.getsize(shot) > 10_000

        urls = requests_made(page)
        assert urls and all(url.startswith(daemon.status_url + "/") for url in urls), urls

    status, headers, body = daemon.get("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"] and "connect-src 'self'" in headers["Content-Security-Policy"]
    assert b"<script src" not in body and b"<link" not in body and b"@import" not in body, "self-contained"


def test_pairs_and_targets_appear_and_a_token_is_read_from_the_fragment(vigild, page, tmp_path):
    backend = vigild()
    token = tmp_path / "token"
    token.write_text("s3cret+0123456789abcdef=\n")
    config = tmp_path / "vigil.yaml"
    config.write_text(f"targets:\n  - name: backend-echo\n    url: {backend.ws()}\n    critical: true\n")
    front = vigild("--mode", "proxy", "--upstream", backend.ws(), "--config", str(config), "--status-token-file", str(token))
    with sync_connect(front.ws("?client=through")) as ws:
        ws.send("hi")
        assert ws.recv() == "hi"
        page.navigate(front.status_url + "/")
        deadline = time.monotonic() + 5
        while "status_token_file" not in (page.evaluate("document.getElementById('error').textContent") or ""):
            assert time.monotonic() < deadline, "without the token the page says how to give it"
            time.sleep(0.1)
        page.navigate("about:blank")  # else the next is a same-document (fragment) navigation
        page.navigate(front.status_url + "/#token=s3cret+0123456789abcdef=")
        deadline = time.monotonic() + 10
        while True:
            seen = page.evaluate("""(() => ({
              pairs: [...document.querySelectorAll('#pairs tbody tr')].map(r => [...r.cells].map(c => c.textContent)),
              targets: [...document.querySelectorAll('#targets tbody tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent]),
              hidden: [document.getElementById('pairs-section').hidden, document.getElementById('targets-section').hidden],
            }))()""")
            if seen["targets"] == [["backend-echo (critical)", "up"]] and len(seen["pairs"]) == 1:
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert seen["hidden"] == [False, False]
        assert seen["pairs"][0][3] == backend.ws(), seen
