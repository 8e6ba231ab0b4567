"""The status API: every endpoint, and a clear 4xx for every bad request."""

import asyncio
import json
import signal
import socket
import time

import pytest
import websockets


def test_probes_and_health(vigild):
    daemon = vigild()
    assert daemon.get("/livez")[0] == 200 and daemon.get("/livez")[2] == b"ok\n"
    assert daemon.get("/readyz")[0] == 200
    status, headers, body = daemon.get("/health")
    assert status == 200
    assert headers["Content-Type"] == "application/health+json"
    health = json.loads(body)
    assert health["status"] == "pass"
    assert health["checks"]["connections:active"][0]["observedValue"] == 0
    assert health["checks"]["websocket:listener"][0]["observedValue"] == "ready"
    assert "closes:abnormal_last_minute" in health["checks"]


def test_health_warns_near_capacity(vigild):
    daemon = vigild("--max-connections", "1")

    async def scenario():
        async with websockets.connect(daemon.ws()):
            status, _, body = daemon.get("/health")
            health = json.loads(body)
            assert status == 503 and health["status"] == "fail"
            assert health["checks"]["connections:active"][0]["output"] == "1 of 1 connections in use"

    asyncio.run(scenario())


def test_metrics_are_prometheus_text(vigild):
    daemon = vigild()
    status, headers, body = daemon.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for name in ["vigil_connections_active", "vigil_connections_opened_total", "vigil_ping_rtt_seconds"]:
        assert f"# TYPE {name}" in text


def test_rtt_shows_up_after_a_pong(vigild):
    daemon = vigild("--ping-interval", "100ms")

    async def scenario():
        async with websockets.connect(daemon.ws("?client=rtt")):
            await asyncio.sleep(0.4)
            live = daemon.get_json("/connections")["connections"][0]
            assert live["pings_sent"] >= 2 and live["pongs_received"] >= 2
            assert isinstance(live["rtt_ms"], float) and 0 < live["rtt_ms"] < 100
        await asyncio.sleep(0.1)
        record = daemon.closes()["closes"][0]
        assert record["last_rtt_ms"] > 0

    asyncio.run(scenario())
    assert daemon.metrics()['vigil_ping_rtt_seconds_count{leg="client"}'] >= 2


def test_rtt_is_null_before_the_first_pong(vigild):
    daemon = vigild()

    async def scenario():
        async with websockets.connect(daemon.ws()):
            live = daemon.get_json("/connections")["connections"][0]
            assert live["rtt_ms"] is None and live["client"] is None

    asyncio.run(scenario())


BAD = [
    ("/closes?kind=bogus", 400, "unknown kind \\\"bogus\\\""),
    ("/closes?cause=nope", 400, "unknown cause"),
    ("/closes?limit=0", 400, "limit \\\"0\\\" must be a whole number from 1 to 1000 (follow next for more)"),
    ("/closes?limit=1001", 400, "must be a whole number from 1 to 1000"),
    ("/closes?before_seq=x", 400, "before_seq \\\"x\\\" is not a close sequence number"),
    ("/connections?after_id=-1", 400, "after_id \\\"-1\\\" is not a connection id"),
    ("/closes?limit=99999999999999999999", 400, "must be a whole number"),
    ("/closes?limit=-5", 400, "must be a whole number"),
    ("/closes?limit=abc", 400, "must be a whole number"),
    ("/closes?limit=1&limit=2", 400, "given twice"),
    ("/closes?frobnicate=1", 400, "unknown query parameter \\\"frobnicate\\\""),
    ("/closes?client=%ZZ", 400, "malformed percent-encoding"),
    ("/status?x=1", 400, "this endpoint takes no parameters"),
    ("/connections/abc", 400, "connection id \\\"abc\\\" is not a number"),
    ("/connections/424242", 404, "no open connection with id 424242"),
    ("/nope", 404, "no endpoint /nope"),
]


@pytest.mark.parametrize("path,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_json_errors(vigild, path, status, message):
    daemon = vigild()
    got, headers, body = daemon.get(path)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert message in body.decode(), body


def test_wrong_method_and_malformed_http(vigild):
    daemon = vigild()
    host, port = daemon.status_url[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        response = sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 405") and b"Allow: GET" in response
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        response = sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 400") and b'{"error":"malformed HTTP request: ' in response
    assert daemon.get("/livez")[0] == 200


def test_keep_alive_and_a_burst_of_requests(vigild):
    daemon = vigild()
    host, port = daemon.status_url[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 500)
        data = b""
        while data.count(b"HTTP/1.1 200") < 500:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    assert daemon.get("/readyz")[0] == 200


def test_readyz_is_503_while_draining(vigild):
    daemon = vigild("--close-timeout", "2s")

    async def scenario():
        # A peer that never answers the close keeps vigild draining for the close timeout.
        reader, writer = await asyncio.open_connection(daemon.host, daemon.port)
        from wsraw import handshake_request
        writer.write(handshake_request())
        await reader.readuntil(b"\r\n\r\n")
        import signal
        daemon.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert daemon.get("/readyz")[0] == 503
        assert daemon.get("/readyz")[2] == b"draining\n"
        health = json.loads(daemon.get("/health")[2])
        assert health["status"] == "fail"
        writer.close()

    asyncio.run(scenario())
    assert daemon.stop() == 0


def _doc_example(doc, title):
    """The JSON of the example under `title` in docs/status-api.md."""
    block = doc.split(title, 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_the_documented_examples_have_the_fields_the_api_answers_with(vigild):
    """docs/status-api.md's examples against live answers: the same keys (they once lacked
    handshakes_pending, leg, direction, target, pair_id, upstream and app_*)."""
    import os
    from conftest import ROOT
    doc = open(os.path.join(ROOT, "docs", "status-api.md"), encoding="utf-8").read()
    daemon = vigild()

    async def one_connection():
        async with websockets.connect(daemon.ws("?client=doc")) as ws:
            await ws.send("x")
            await ws.recv()
            return daemon.get_json("/connections")

    live_connections = asyncio.run(one_connection())
    daemon.wait_closes(1)
    documented = _doc_example(doc, "`GET /connections` (while the first was open)")
    assert set(documented) == set(live_connections)
    assert set(documented["connections"][0]) == set(live_connections["connections"][0])
    documented = _doc_example(doc, "`GET /closes?limit=2`")
    live = daemon.get_json("/closes?limit=2")
    assert set(documented) == set(live) and set(documented["closes"][0]) == set(live["closes"][0])
    documented = _doc_example(doc, "`GET /status` (configuration abridged)")
    assert set(documented) == set(daemon.get_json("/status"))


def test_every_metric_is_documented_and_every_documented_metric_exists(vigild, tmp_path):
    """The metric families /metrics exposes (with a close, a refused handshake and a monitor
    target, so that the series made on first use exist) against the names docs/status-api.md
    and docs/targets.md give, both ways."""
    import os
    import re
    from conftest import ROOT
    service = vigild("--mode", "command")
    config = tmp_path / "vigil.yaml"
    config.write_text(f"targets:\n  - name: service\n    url: {service.ws()}\n    command:\n      every: 200ms\n"
                      "      message: '{\"requestID\": {{id}}, \"command\": \"status\"}'\n      reply_within: 1s\n")
    daemon = vigild("--config", str(config))

    async def one_close():
        async with websockets.connect(daemon.ws()) as ws:
            await ws.send("x")
            await ws.recv()

    asyncio.run(one_close())
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(4096)
    daemon.wait_closes(1)
    time.sleep(0.5)  # a reply or two from the target's command
    service.stop()  # the target's connection ends: its close counter's series appears
    exposed = set()
    for _ in range(100):
        text = daemon.get("/metrics")[2].decode()
        exposed = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
        if {"vigil_target_reply_seconds", "vigil_target_closes_total"} <= exposed:
            break
        time.sleep(0.1)
    # A TLS listener's counters appear with their first count: plain HTTP to its port, and a
    # reload that finds a key not matching its certificate.
    from tlsca import PrivateCA
    ca = PrivateCA(tmp_path)
    cert, key = ca.issue("site", ["localhost"])
    _, other_key = ca.issue("other", ["localhost"])
    served_key = tmp_path / "served.key"
    served_key.write_bytes(key.read_bytes())
    secure = vigild("--tls-cert-file", str(cert), "--tls-key-file", str(served_key))
    with socket.create_connection(("127.0.0.1", secure.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(4096)
    served_key.write_bytes(other_key.read_bytes())
    secure.proc.send_signal(signal.SIGHUP)
    secure.wait_for_log(lambda e: e["message"].startswith("reload: the running certificate stays"))
    exposed |= set(re.findall(r"^# TYPE (\w+) ", secure.get("/metrics")[2].decode(), re.M))
    # A listener with the PROXY protocol: its counter appears with a balancer's health check.
    behind = vigild("--proxy-protocol", "v2", "--trusted-proxies", "127.0.0.1")
    with socket.create_connection(("127.0.0.1", behind.port)) as sock:
        sock.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
    for _ in range(100):
        text = behind.get("/metrics")[2].decode()
        if "vigil_proxy_protocol_headers_total" in text:
            break
        time.sleep(0.05)
    exposed |= set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    # A proxy route's pool: its members' series are there from the start, their tries' with the first.
    pool = vigild("--mode", "proxy", "--upstream", service.ws())
    with socket.create_connection(("127.0.0.1", pool.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.recv(4096)
    exposed |= set(re.findall(r"^# TYPE (\w+) ", pool.get("/metrics")[2].decode(), re.M))
    docs = "".join(open(os.path.join(ROOT, "docs", name), encoding="utf-8").read() for name in ("status-api.md", "targets.md"))
    documented = {name for name in re.findall(r"`(vigil_[a-z_]+)", docs)}
    assert exposed - documented == set(), f"not documented: {sorted(exposed - documented)}"
    assert documented - exposed == set(), f"documented but not exposed: {sorted(documented - exposed)}"
