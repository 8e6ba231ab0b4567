"""Proxy mode against independent backends (Python websockets in its own process, the Go gorilla
baseline): what is forwarded, what is relayed, how each leg ends and what the records say."""

import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import struct
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import ROOT, rss_kib
from wsraw import FrameStream, frame

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE = os.path.join(ROOT, ".build-go", "baseline-gorilla")
MIB = 1 << 20


class Backend:
    """backend.py in its own process (so it can be killed or frozen); its stdout lines kept."""

    def __init__(self, tls=None, port=0, compression=False):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "backend.py"), str(port), *(tls or [])],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env={**os.environ, **({"BACKEND_COMPRESSION": "1"} if compression else {})})
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "ready":
            self.proc.wait()
            raise RuntimeError(f"backend.py did not start on port {port}")
        self.port = int(first[1])
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    @classmethod
    def on_port(cls, port, tls=None):
        return cls(tls, port)

    def url(self, path=""):
        return f"ws://127.0.0.1:{self.port}{path}"

    def closes(self):
        return [line for line in self.lines if line.startswith("closed ")]

    def wait_close(self, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.closes():
                return self.closes()[0]
            time.sleep(0.005)
        raise AssertionError(f"the backend saw no close: {self.lines}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def backend():
    started = []

    def start(tls=None, compression=False):
        b = Backend(tls, compression=compression)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def proxy(vigild, upstream, *flags):
    return vigild("--mode", "proxy", "--upstream", upstream, *flags)


def connect(daemon, path="/", **kwargs):
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("max_size", None)
    return websockets.connect(daemon.ws_url.rstrip("/") + path, **kwargs)


def record_by_leg(daemon, count=2, query=""):
    records = daemon.wait_closes(count, query=query)
    return {r["leg"]: r for r in records}


def test_forwarded_request_subprotocol_and_messages_both_ways(vigild, backend):
    b = backend()
    # The browser-style Origin is a cross-origin one; the proxy admits it only when told to.
    daemon = proxy(vigild, b.url("/base?v=2"), "--allowed-origins", "http://app")

    async def scenario():
        async with connect(daemon, "/headers/room?client=k1&a=1", subprotocols=["chat.v1", "chat.v2"],
                           additional_headers={"Cookie": "s=1", "Authorization": "Bearer t", "Origin": "http://app",
                                               "X-Custom": "yes", "Keep-Alive": "timeout=5",
                                               "X-Forwarded-For": "10.9.9.9"}) as ws:
            seen = json.loads(await ws.recv())
            assert ws.subprotocol == "chat.v2", "the client hears the upstream's choice"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            await ws.close(1000, "done")
            return seen

    seen = asyncio.run(scenario())
    headers = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    assert seen["path"] == "/base/headers/room?v=2&client=k1&a=1", "upstream path, client path; upstream query, client's"
    assert seen["subprotocol"] == "chat.v2"
    assert headers["sec-websocket-protocol"] == ["chat.v1, chat.v2"]
    for name, value in [("cookie", "s=1"), ("authorization", "Bearer t"), ("origin", "http://app"), ("x-custom", "yes")]:
        assert headers[name] == [value], name
    assert "keep-alive" not in headers, "hop-by-hop headers stay behind"
    # The client's permessage-deflate offer goes upstream as vigild read it (this backend declines it).
    assert headers["sec-websocket-extensions"] == ["permessage-deflate; client_max_window_bits"]
    assert headers["x-forwarded-for"] == ["10.9.9.9, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == [f"127.0.0.1:{daemon.port}"]
    assert headers["forwarded"] == [f'for=127.0.0.1;host="127.0.0.1:{daemon.port}";proto=http']
    assert headers["host"] == [f"127.0.0.1:{b.port}"]
    legs = record_by_leg(daemon)
    assert legs["client"]["pair_id"] == legs["upstream"]["pair_id"]
    assert legs["client"]["upstream"] == legs["upstream"]["upstream"] == b.url("/base?v=2")
    assert (legs["client"]["kind"], legs["client"]["cause"], legs["client"]["initiator"]) == ("normal", "peer_close", "peer")
    assert (legs["upstream"]["kind"], legs["upstream"]["cause"], legs["upstream"]["initiator"], legs["upstream"]["code"],
            legs["upstream"]["reason"], legs["upstream"]["clean"]) == ("normal", "partner_closed", "vigild", 1000, "done", True)
    assert (legs["upstream"]["partner_kind"], legs["upstream"]["partner_cause"]) == ("normal", "peer_close")
    assert legs["client"]["path"] == "/headers/room" and legs["upstream"]["path"] == "/base/headers/room"
    assert legs["client"]["messages_in"] == 2 and legs["upstream"]["messages_in"] == 3
    assert b.wait_close() == "closed 1000 done", "the client's close frame reached the backend"


def test_messages_of_max_message_relayed_both_ways(vigild, backend):
    """At the defaults (64 KiB frames, 1 MiB messages): the client sends 1 MiB in 64 KiB fragments,
    the backend echoes it as one 1 MiB frame, vigild re-frames it for the client."""
    b = backend()
    daemon = proxy(vigild, b.url())

    async def scenario():
        async with connect(daemon, "/big") as ws:
            for payload in (b"b" * MIB, "t" * MIB):
                await ws.send([payload[i:i + 65536] for i in range(0, MIB, 65536)])
                assert await ws.recv() == payload
            await ws.close()

    asyncio.run(scenario())
    legs = record_by_leg(daemon)
    assert legs["client"]["kind"] == "normal" and legs["upstream"]["kind"] == "normal"


@pytest.mark.parametrize("who", ["backend", "client"])
def test_a_4000_close_is_relayed_with_its_reason(vigild, backend, who):
    b = backend()
    daemon = proxy(vigild, b.url())

    async def scenario():
        async with connect(daemon) as ws:
            if who == "backend":
                await ws.send("close 4000 bye from the backend")
            else:
                await ws.close(4001, "bye from the client")
            try:
                await ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd

    rcvd = asyncio.run(scenario())
    legs = record_by_leg(daemon)
    if who == "backend":
        assert (rcvd.code, rcvd.reason) == (4000, "bye from the backend")
        first, second = legs["upstream"], legs["client"]
    else:
        assert b.wait_close() == "closed 4001 bye from the client"
        first, second = legs["client"], legs["upstream"]
    assert (first["kind"], first["cause"], first["initiator"], first["clean"]) == ("error", "peer_close", "peer", True)
    assert (second["kind"], second["code"], second["cause"], second["initiator"], second["clean"]) == \
        ("error", first["code"], "partner_closed", "vigild", True)
    assert second["reason"] == first["reason"]
    assert (second["partner_kind"], second["partner_cause"]) == ("error", "peer_close")


def test_pings_are_relayed_and_each_leg_has_vigilds_own(vigild, backend):
    """A client's ping is answered by the backend, a backend's by the client, through vigild;
    vigild pings each leg on its own schedule (here 300 ms client, 200 ms upstream)."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--ping-interval", "300ms", "--upstream-ping-interval", "200ms")

    async def scenario():
        async with connect(daemon) as ws:
            waiter = await ws.ping(b"client-ping")
            assert await asyncio.wait_for(waiter, 2) >= 0, "the backend's pong came back"
            await ws.send("ping backend-ping")  # the backend pings the client and reports its pong
            assert await asyncio.wait_for(ws.recv(), 2) == "pong backend-ping"
            await asyncio.sleep(1)
            rows = daemon.get_json("/connections")["connections"]
            await ws.close()
            return rows

    rows = asyncio.run(scenario())
    by_leg = {row["leg"]: row for row in rows}
    assert by_leg["client"]["pair_id"] == by_leg["upstream"]["pair_id"] is not None
    assert by_leg["client"]["rtt_ms"] is not None and by_leg["upstream"]["rtt_ms"] is not None
    assert by_leg["upstream"]["pings_sent"] > by_leg["client"]["pings_sent"] >= 2, "each leg on its own schedule"


class RawWebSocketUpstream(FrameStream):
    """An upstream on a bare socket that accepts one WebSocket and shows the frames vigild puts
    on its wire, so what is relayed is seen there, not inferred from a library's callbacks."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, extensions=None):
        """`extensions`: a Sec-WebSocket-Extensions line to answer with, whatever was offered."""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.extensions = extensions
        self.sock = None
        self.head = None
        self.buffer = b""
        self.accepted = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        sock, _ = self.listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += sock.recv(4096)
        head, self.buffer = request.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        key = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head).group(1)
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
        answer = f"Sec-WebSocket-Extensions: {self.extensions}\r\n".encode() if self.extensions else b""
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n" + answer + b"\r\n")
        sock.settimeout(5)
        self.sock = sock
        self.accepted.set()

    def read_frame(self):
        """(opcode, payload, masked) of the next frame vigild sent."""
        assert self.accepted.wait(5)
        return self.read_masked_frame()

    def send(self, opcode, payload=b""):
        self.sock.sendall(frame(opcode, payload, mask=False))

    def close(self):
        if self.sock:
            self.sock.close()
        self.listener.close()


def test_a_clients_ping_reaches_the_backend_and_only_the_backends_pong_answers_it(vigild):
    """traefik#3683: a proxy that answers pings itself makes a client's heartbeat measure the
    proxy. Seen on the upstream's wire: the client's ping arrives (masked, as from a client),
    no pong reaches the client until the backend sends one, and the backend's ping is answered
    by the client's pong, relayed."""
    upstream = RawWebSocketUpstream()
    daemon = proxy(vigild, f"ws://127.0.0.1:{upstream.port}/")

    async def scenario():
        async with connect(daemon) as ws:
            waiter = await ws.ping(b"client-ping")
            assert await asyncio.to_thread(upstream.read_frame) == (0x9, b"client-ping", True)
            await asyncio.sleep(0.3)
            assert not waiter.done(), "nothing answered the ping before the backend did"
            upstream.send(0xA, b"client-ping")
            assert await asyncio.wait_for(waiter, 2) >= 0.3
            upstream.send(0x9, b"backend-ping")
            assert await asyncio.to_thread(upstream.read_frame) == (0xA, b"backend-ping", True)
            await ws.close(1000, "done")
            assert await asyncio.to_thread(upstream.read_frame) == (0x8, struct.pack("!H", 1000) + b"done", True)
            upstream.send(0x8, struct.pack("!H", 1000) + b"done")

    try:
        asyncio.run(scenario())
    finally:
        upstream.close()
    legs = record_by_leg(daemon)
    assert legs["client"]["kind"] == legs["upstream"]["kind"] == "normal"


def http_status(daemon, path, extra=""):
    """The status, headers and body vigild answers a handshake with, from a raw socket."""
    from wsraw import handshake_request, read_http_response
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(handshake_request(path, extra=extra))
        return read_http_response(sock)


def test_an_upstream_deflate_answer_that_fits_no_offer_is_502_naming_it(vigild):
    """The client offers permessage-deflate with a 10-bit server window at most; an upstream
    that answers with 12 bits answered something the client would fail the connection on
    (RFC 7692 §7.1.2.1): vigild refuses the pair with 502 naming the answer, and the client
    never gets a stream it could not read."""
    upstream = RawWebSocketUpstream(extensions="permessage-deflate; server_max_window_bits=12")
    try:
        daemon = proxy(vigild, f"ws://127.0.0.1:{upstream.port}/")
        status, _, body = http_status(daemon, "/", extra="Sec-WebSocket-Extensions: permessage-deflate; "
                                                         "server_max_window_bits=10\r\n")
        assert status == 502, (status, body)
        assert ('the upstream\'s answer "permessage-deflate; server_max_window_bits=12" fits none of the client\'s '
                "offers") in body.decode(), body
        assert upstream.accepted.wait(5)
        assert "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10" in upstream.head.split("\r\n")
        assert daemon.metrics()['vigil_handshakes_rejected_total{reason="upstream_unreachable"}'] == 1
    finally:
        upstream.close()


def test_refusals_from_the_upstream_are_passed_on(vigild, backend):
    b = backend()
    daemon = proxy(vigild, b.url())
    status, headers, body = http_status(daemon, "/forbidden")
    assert status == 403
    assert headers["www-authenticate"] == 'Bearer realm="vigil-test"'
    assert body == b"no token, no socket\n"
    status, headers, body = http_status(daemon, "/busy")
    assert (status, headers["retry-after"], body) == (503, "7", b"come back later\n")
    metrics = daemon.metrics()
    assert metrics['vigil_handshakes_rejected_total{reason="upstream_refused"}'] == 2
    line = daemon.wait_for_log(lambda e: "refused the upgrade" in e.get("message", ""))
    assert "HTTP 403 Forbidden" in line["message"] and "no token, no socket" in line["message"]


def test_a_request_listing_websocket_again_and_again_is_answered_once_and_keeps_no_slot(vigild, backend):
    """`Upgrade: websocket, websocket, …`: NIO's upgrade handler asks vigild again for each
    listed protocol after a refusal. Before, each ask reserved another connection slot (the
    earlier one overwritten and never given back) and dialed the upstream again: one such
    request to a path the upstream refuses, with max_connections 3, got 503 instead of the
    upstream's 403 and left room for one client. Now: one dial, the upstream's answer, and
    every slot free."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--max-connections", "3")
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall((f"GET /forbidden HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\nUpgrade: "
                      + ", ".join(["websocket"] * 5) + "\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status = sock.recv(64).split(b" ")[1]
    assert status == b"403", "the upstream's answer"
    dials = daemon.wait_for_log(lambda e: "refused the upgrade" in e.get("message", "")) and \
        [line for line in daemon.lines if "refused the upgrade" in line]
    assert len(dials) == 1, f"the upstream was asked {len(dials)} times for one request"
    metrics = daemon.metrics()
    assert metrics['vigil_handshakes_rejected_total{reason="upstream_refused"}'] == 1
    assert metrics.get('vigil_handshakes_rejected_total{reason="capacity"}', 0) == 0

    async def three_clients():
        clients = [await connect(daemon, f"/echo{i}") for i in range(3)]
        for ws in clients:
            await ws.send("still room")
            assert await ws.recv() == "still room"
            await ws.close()

    asyncio.run(three_clients())


class RawUpstream:
    """An upstream on a bare socket that refuses every handshake with the bytes a test gives it
    for the request's path: chunked bodies, bodies over 4 KiB."""

    def __init__(self, responses):
        self.responses = responses
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                path = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else ""
                answer = self.responses.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                answer, hold = answer if isinstance(answer, tuple) else (answer, 0.2)
                sock.sendall(answer)
                time.sleep(hold)  # the body is read by its framing, not by the end of the connection

    def close(self):
        self.listener.close()


def test_an_upstream_refusal_body_is_passed_on_chunked_or_cut_at_4kib(vigild):
    big = bytes(ord("a") + i % 26 for i in range(10_000))
    chunked_big = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (big[:3000], big[3000:7000], big[7000:]))
    upstream = RawUpstream({
        "/chunked": b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n"
                    b"WWW-Authenticate: Bearer realm=\"raw\"\r\n\r\n"
                    b"7\r\nsign in\r\n12;ext=1\r\n, then come back.\n\r\n0\r\n\r\n",
        "/long": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10000\r\n\r\n" + big,
        "/chunked-long": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunked_big + b"0\r\n\r\n",
    })
    try:
        daemon = proxy(vigild, f"ws://127.0.0.1:{upstream.port}/")
        status, headers, body = http_status(daemon, "/chunked")
        assert (status, headers["www-authenticate"], body) == (401, 'Bearer realm="raw"', b"sign in, then come back.\n")
        status, _, body = http_status(daemon, "/long")
        assert (status, body) == (403, big[:4096]), "the first 4 KiB of the body"
        status, headers, body = http_status(daemon, "/chunked-long")
        assert (status, headers["retry-after"], body) == (429, "3", big[:4096])
        assert daemon.metrics()['vigil_handshakes_rejected_total{reason="upstream_refused"}'] == 3
    finally:
        upstream.close()


def test_a_refusal_whose_body_stalls_is_passed_on_at_the_deadline(vigild):
    """The upstream answers 403 and sends part of a chunked body, then nothing: when
    upstream_connect_timeout runs out the client gets the 403 with what arrived, not a 504."""
    upstream = RawUpstream({
        "/stalled": (b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nno, and", 3.0),
    })
    try:
        daemon = proxy(vigild, f"ws://127.0.0.1:{upstream.port}/", "--upstream-connect-timeout", "500ms")
        started = time.monotonic()
        status, _, body = http_status(daemon, "/stalled")
        took = time.monotonic() - started
        assert (status, body) == (403, b"no, and"), (status, body)
        assert 0.5 <= took < 2
        assert daemon.metrics()['vigil_handshakes_rejected_total{reason="upstream_refused"}'] == 1
    finally:
        upstream.close()


def test_nothing_listening_upstream_is_502_and_silence_is_504(vigild):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    daemon = proxy(vigild, f"ws://127.0.0.1:{dead_port}/x")
    status, _, body = http_status(daemon, "/")
    assert status == 502
    assert f"upstream ws://127.0.0.1:{dead_port}/x" in body.decode() and "Connection refused" in body.decode()
    line = daemon.wait_for_log(lambda e: "upstream" in e.get("message", "") and "Connection refused" in
                               e.get("message", ""))
    assert f"ws://127.0.0.1:{dead_port}/x" in line["message"], "logged with the upstream and its error"
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="upstream_unreachable"}'] == 1
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        daemon = proxy(vigild, f"ws://127.0.0.1:{silent.getsockname()[1]}/", "--upstream-connect-timeout", "300ms")
        started = time.monotonic()
        status, _, body = http_status(daemon, "/")
        took = time.monotonic() - started
    assert status == 504 and "no answer within 300ms" in body.decode(), body
    assert 0.3 <= took < 2
    # The client's handshake deadline (1 s here) covers its request, not the upstream's silence:
    # with a longer upstream_connect_timeout the client still gets its 504, not a dropped socket.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        daemon = proxy(vigild, f"ws://127.0.0.1:{silent.getsockname()[1]}/", "--upstream-connect-timeout", "2s",
                       "--handshake-timeout", "1s")
        started = time.monotonic()
        status, _, body = http_status(daemon, "/")
        took = time.monotonic() - started
    assert status == 504 and "no answer within 2s" in body.decode(), body
    assert 2 <= took < 3.5
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="upstream_timeout"}'] == 1


@pytest.mark.parametrize("failure_code", [None, 1011, 1001])
def test_a_killed_backend_gets_the_client_a_1014_within_100ms(vigild, backend, failure_code):
    """1014 by default; upstream_failure_code 1011 or 1001 for clients that treat 1014 as unknown."""
    b = backend()
    flags = () if failure_code is None else ("--upstream-failure-code", str(failure_code))
    daemon = proxy(vigild, b.url(), *flags)
    expected = failure_code or 1014

    async def scenario():
        async with connect(daemon, "/") as ws:
            await ws.send("hi")
            await ws.recv()
            killed = time.monotonic()
            b.proc.kill()
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as closed:
                return closed.rcvd, time.monotonic() - killed

    rcvd, after = asyncio.run(scenario())
    print(f"backend SIGKILLed: the client had {rcvd.code} after {after * 1000:.1f} ms")
    assert rcvd.code == expected and rcvd.reason.startswith("upstream leg ended: ")
    assert after < 0.100
    legs = record_by_leg(daemon)
    assert legs["client"]["pair_id"] == legs["upstream"]["pair_id"]
    assert legs["upstream"]["cause"] in ("eof", "reset") and legs["upstream"]["initiator"] == "peer"
    assert (legs["client"]["code"], legs["client"]["cause"], legs["client"]["initiator"], legs["client"]["partner_cause"]) \
        == (expected, "partner_closed", "vigild", legs["upstream"]["cause"])
    assert legs["client"]["kind"] == ("going_away" if expected == 1001 else "error")


def test_a_frozen_backend_is_a_pong_timeout_and_the_client_gets_1014(vigild, backend):
    b = backend()
    p, t = 0.5, 0.5
    daemon = proxy(vigild, b.url(), "--ping-interval", "10s", "--upstream-ping-interval", "500ms",
                   "--upstream-pong-timeout", "500ms")

    async def scenario():
        async with connect(daemon) as ws:
            await ws.send("hi")
            await ws.recv()
            frozen = time.monotonic()
            b.proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as closed:
                return closed.rcvd, time.monotonic() - frozen

    rcvd, after = asyncio.run(scenario())
    print(f"backend SIGSTOPped: the client had 1014 after {after * 1000:.0f} ms (P + T = {(p + t) * 1000:.0f} ms)")
    assert rcvd.code == 1014 and rcvd.reason == "upstream leg ended: pong_timeout"
    assert after <= p + t + 0.100
    legs = record_by_leg(daemon)
    assert (legs["upstream"]["cause"], legs["upstream"]["initiator"]) == ("pong_timeout", "vigild")
    assert (legs["client"]["code"], legs["client"]["partner_cause"]) == (1014, "pong_timeout")


def test_sigterm_closes_both_legs_with_1001(vigild, backend):
    b = backend()
    daemon = proxy(vigild, b.url())

    async def scenario():
        async with connect(daemon) as ws:
            await ws.send("hi")
            await ws.recv()
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                return closed.rcvd

    rcvd = asyncio.run(scenario())
    assert (rcvd.code, rcvd.reason) == (1001, "vigild shutting down")
    assert b.wait_close() == "closed 1001 vigild shutting down"
    assert daemon.stop() == 0
    closes = [e for e in daemon.json_logs() if e.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert sorted((e["ws_leg"], e["ws_close_cause"], e["ws_close_code"]) for e in closes) == \
        [("client", "shutdown", "1001"), ("upstream", "shutdown", "1001")]


def test_a_reload_sends_new_pairs_to_the_new_upstream_and_keeps_live_ones(vigild, backend, tmp_path):
    first, second = backend(), backend()
    config = tmp_path / "vigil.yaml"
    config.write_text(f"mode: proxy\nupstream: {first.url('/one')}\n")
    daemon = vigild("--config", str(config))

    async def scenario():
        async with connect(daemon, "/headers") as old:
            assert json.loads(await old.recv())["path"] == "/one/headers"
            config.write_text(f"mode: proxy\nupstream: {second.url('/two')}\n")
            daemon.proc.send_signal(signal.SIGHUP)
            daemon.wait_for_log(lambda e: "configuration reloaded" in e.get("message", ""))
            async with connect(daemon, "/headers") as new:
                assert json.loads(await new.recv())["path"] == "/two/headers"
            await old.send("still here")
            assert await old.recv() == "still here"

    asyncio.run(scenario())


MIB = 1 << 20


def test_a_client_that_does_not_read_is_a_slow_consumer_and_the_backend_gets_1001(vigild, backend):
    """The backend floods the client, which never reads: vigild stops reading the backend once
    the client leg's output backs up, closes the client leg after the write timeout, and tells
    the backend with 1001. Memory stays bounded."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--write-timeout", "1s", "--ping-interval", "0")
    from wsraw import RawPeer
    peer = RawPeer(daemon.port, "/flood")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = rss_kib(daemon.proc.pid)

    message = frame(0x2, b"y" * 60000)  # masked once: the flood is not held back by Python

    def flood():  # the backend echoes each message; the peer keeps asking and never reads
        try:
            while True:
                peer.sock.sendall(message)
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    legs = record_by_leg(daemon)
    grown = rss_kib(daemon.proc.pid) - before
    print(f"client not reading: vigild's RSS grew {grown} KiB before the close")
    # Without backpressure the backend's echoes would pile up in vigild for the whole second
    # (hundreds of MiB at loopback speed); with it, about max_backlog + max_message per leg.
    assert grown < 16 * 1024
    assert (legs["client"]["cause"], legs["client"]["initiator"]) == ("slow_consumer", "vigild")
    # Closed by the write timer (1 s), not by the ceiling (max_backlog + max_message) that a leg
    # whose partner kept being read would hit within milliseconds.
    assert legs["client"]["duration_ms"] >= 1000, legs["client"]
    assert (legs["upstream"]["code"], legs["upstream"]["cause"], legs["upstream"]["partner_cause"]) == \
        (1001, "partner_closed", "slow_consumer")
    assert b.wait_close().startswith("closed 1001 client leg ended: slow_consumer")
    peer.close()


def test_the_gorilla_baseline_behind_vigild(vigild):
    """The Go baseline pings every 500 ms and drops a connection whose pong is 500 ms late: the
    client's pongs reach it through vigild, so the connection lives; messages echo."""
    server = subprocess.Popen([BASELINE, "-addr", "127.0.0.1:0", "-ping-interval", "500ms", "-pong-timeout", "500ms"],
                              stdout=subprocess.PIPE, text=True)
    try:
        addr = server.stdout.readline().split()[1]
        daemon = proxy(vigild, f"ws://{addr}/ws", "--ping-interval", "0", "--upstream-ping-interval", "0")

        async def scenario():
            async with websockets.connect(daemon.ws_url, ping_interval=None) as ws:
                for index in range(6):
                    await ws.send(f"m{index}")
                    assert await ws.recv() == f"m{index}"
                    await asyncio.sleep(0.5)
                await ws.close(1000, "bye")

        asyncio.run(scenario())
        legs = record_by_leg(daemon)
        assert (legs["client"]["cause"], legs["upstream"]["cause"]) == ("peer_close", "partner_closed")
        assert legs["client"]["duration_ms"] >= 3000, "outlived several of the baseline's pong deadlines"
    finally:
        server.kill()
        server.wait()


def make_certificates(directory):
    """A private CA and a certificate for localhost signed by it, made with openssl."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=vigil test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    (directory / "leaf.ext").write_text("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem",
        "-days", "2", "-extfile", "leaf.ext")
    return directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"


def test_a_wss_upstream_with_a_private_ca(vigild, backend, tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    b = backend(tls=[str(cert), str(key)])
    upstream = f"wss://localhost:{b.port}/secure"
    daemon = proxy(vigild, upstream, "--upstream-ca-file", str(ca))

    async def scenario():
        async with connect(daemon, "/headers") as ws:
            seen = json.loads(await ws.recv())
            await ws.send("over TLS")
            assert await ws.recv() == "over TLS"
            await ws.close()
            return seen

    assert asyncio.run(scenario())["path"] == "/secure/headers"
    assert record_by_leg(daemon)["upstream"]["upstream"] == upstream
    # Without the CA the system's trust store does not know the certificate: 502, saying why.
    untrusting = proxy(vigild, upstream)
    status, _, body = http_status(untrusting, "/")
    assert status == 502
    text = body.decode()
    assert "TLS handshake failed: the certificate for localhost is not signed by a CA trusted here " \
           "(the system's trust store)" in text, text
    assert "/work/" not in text and ".cc:" not in text, "no build paths in what a client is shown"


def test_drain_window_spreads_the_stop(vigild, backend):
    """With drain_window 1s a stop sends its 1001s over a second instead of in one burst; every
    pair still ends together and every close is recorded."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--drain-window", "1s")

    async def scenario():
        clients = [await websockets.connect(daemon.ws_url + f"?client=c{i}", ping_interval=None) for i in range(20)]
        daemon.proc.send_signal(signal.SIGTERM)
        for ws in clients:
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                pass
        return [ws.close_code for ws in clients]

    from conftest import rfc3339_ns
    assert asyncio.run(scenario()) == [1001] * 20
    assert daemon.stop() == 0
    closes = [e for e in daemon.json_logs() if e.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert len(closes) == 40
    assert {e["ws_close_code"] for e in closes} == {"1001"}
    stamps = sorted(rfc3339_ns(e["ts"]) for e in closes if e["ws_leg"] == "client")
    spread = (stamps[-1] - stamps[0]) / 1e9
    print(f"drain window 1 s: 20 clients closed over {spread:.2f} s")
    assert 0.5 <= spread <= 1.5


def test_a_backend_that_does_not_read_is_a_slow_consumer_and_the_client_gets_1014(vigild, backend):
    """The client floods a backend that never reads: once the upstream leg's output backs up
    vigild stops reading the client, and closes the upstream leg after the write timeout; the
    client hears 1014."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--write-timeout", "1s", "--ping-interval", "0", "--upstream-ping-interval", "0")
    from wsraw import RawPeer
    peer = RawPeer(daemon.port, "/noread")
    stop = threading.Event()
    sent = [0]
    before = rss_kib(daemon.proc.pid)

    message = frame(0x2, b"z" * 60000)  # masked once: the flood is not held back by Python

    def flood():
        try:
            while not stop.is_set():
                peer.sock.sendall(message)
                sent[0] += 60000
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    legs = record_by_leg(daemon, count=2)
    stop.set()
    grown = rss_kib(daemon.proc.pid) - before
    relayed = legs["upstream"]["messages_out"] * 60000
    print(f"backend not reading: vigild relayed {relayed // 1024} KiB to it before closing it; the client got "
          f"{sent[0] // 1024} KiB out in all; vigild's RSS grew {grown} KiB")
    # vigild stopped reading the client once the upstream leg backed up: what it relayed fits in
    # the kernel's buffers of the upstream leg (its send buffer and the backend's receive buffer,
    # at most tcp_wmem's and tcp_rmem's maximum: 4 MiB and 32 MiB here) plus about max_backlog +
    # max_message in vigild, not the gigabytes a second of loopback; and vigild itself grew by
    # about the latter. (Once the upstream leg is closed, the client leg waits close_timeout for
    # the client's close frame, reading and dropping what the flood sends meanwhile, as fast as
    # it comes: the client's own total is no measure of the backpressure.)
    kernel = sum(int(open(f"/proc/sys/net/ipv4/{name}").read().split()[2]) for name in ("tcp_rmem", "tcp_wmem"))
    assert relayed < kernel + 8 * MIB  # vigild's own share is about 2.3 MiB; twice that and more, for slack
    assert grown < 16 * 1024
    assert (legs["upstream"]["cause"], legs["upstream"]["initiator"]) == ("slow_consumer", "vigild")
    assert legs["upstream"]["duration_ms"] >= 1000, "closed by the write timer, not the ceiling"
    assert (legs["client"]["code"], legs["client"]["cause"], legs["client"]["partner_cause"]) == \
        (1014, "partner_closed", "slow_consumer")
    assert legs["client"]["reason"] == "upstream leg ended: slow_consumer"
    peer.close()


def test_the_app_heartbeat_runs_on_the_client_leg_and_is_never_relayed(vigild, backend):
    """vigild's app ping goes to the client only; the client's app pong stops at vigild (the
    backend echoes everything it gets, so a relayed pong would come back); a client that stops
    answering is closed with 4000 and its upstream leg follows."""
    b = backend()
    daemon = proxy(vigild, b.url(), "--app-ping-interval", "300ms", "--app-pong-timeout", "1s")
    ping, pong = '{"type":"ping"}', '{"type":"pong"}'

    async def answering():
        async with connect(daemon, "/?client=answers") as ws:
            for _ in range(3):
                assert await asyncio.wait_for(ws.recv(), 2) == ping
                await ws.send(pong)
            await ws.send("hello")
            while (message := await asyncio.wait_for(ws.recv(), 2)) == ping:
                await ws.send(pong)
            assert message == "hello", "the echo of hello, not of a pong"
            await ws.close(1000, "done")

    async def silent():
        async with connect(daemon, "/?client=silent") as ws:
            assert await asyncio.wait_for(ws.recv(), 2) == ping
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            return ws.close_code, ws.close_reason

    asyncio.run(answering())
    legs = record_by_leg(daemon, query="?pair=" + str(daemon.closes("?client=answers")["closes"][0]["pair_id"]))
    assert legs["upstream"]["messages_out"] == 1 and legs["upstream"]["messages_in"] == 1, "only hello crossed"
    assert legs["client"]["last_app_rtt_ms"] is not None and legs["upstream"]["last_app_rtt_ms"] is None
    assert asyncio.run(silent()) == (4000, "app pong timeout")
    records = daemon.wait_closes(4)
    client = next(r for r in records if r["client"] == "silent" and r["leg"] == "client")
    assert (client["kind"], client["cause"], client["initiator"]) == ("abnormal", "app_pong_timeout", "vigild"), client
    upstream = next(r for r in records if r["pair_id"] == client["pair_id"] and r["leg"] == "upstream")
    assert (upstream["cause"], upstream["partner_cause"]) == ("partner_closed", "app_pong_timeout"), upstream
