"""Every row of the close table, produced against the real vigild binary by independent peers
(Python websockets for well-behaved clients, raw sockets for everything else), then checked
for agreement across /closes, /status, /metrics, /connections and the log."""

import asyncio
import collections
import re
import signal
import socket
import struct
import time

import websockets
from websockets.exceptions import ConnectionClosed

from wsraw import RawPeer

# A silent peer hits the read deadline (700 ms) before its pong deadline (500 + 500 ms);
# a chatty peer that never pongs keeps the read deadline away and hits the pong timeout.
FLAGS = ["--ping-interval", "500ms", "--pong-timeout", "500ms", "--read-deadline", "700ms",
         "--max-backlog", "64KiB", "--max-message", "64KiB", "--close-timeout", "2s", "--write-timeout", "500ms"]

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def connect(daemon, client, **kwargs):
    return websockets.connect(daemon.ws(f"?client={client}"), ping_interval=None, **kwargs)


async def ws_close_with(daemon, client, code, reason):
    async with connect(daemon, client) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.close(code, reason)


async def ws_too_big(daemon, client):
    # Uncompressed: compressed, 100,000 x would be a small frame (and too big once inflated).
    async with connect(daemon, client, max_size=None, compression=None) as ws:
        await ws.send(b"x" * 100_000)  # one frame over max_frame (64 KiB)
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


def raw_no_status(daemon):
    peer = RawPeer(daemon.port, "/ws?client=no_status")
    peer.send_frame(0x8, b"")
    assert peer.read_until_close() == (None, "")
    assert peer.expect_eof()


def raw_close_reason(daemon, client, code, reason):
    peer = RawPeer(daemon.port, f"/ws?client={client}")
    peer.send_frame(0x8, struct.pack("!H", code) + reason.encode())
    assert peer.read_until_close() == (code, "")
    assert peer.expect_eof()


def raw_close_code(daemon, client, code):
    peer = RawPeer(daemon.port, f"/ws?client={client}")
    peer.send_frame(0x8, struct.pack("!H", code) + b"because")
    assert peer.read_until_close() == (code, "")
    assert peer.expect_eof()


def raw_eof(daemon):
    peer = RawPeer(daemon.port, "/ws?client=eof")
    peer.send_frame(0x1, b"last words")
    assert peer.read_frame() == (0x1, b"last words")
    peer.fin()
    assert peer.expect_eof()


def raw_truncated(daemon):
    peer = RawPeer(daemon.port, "/ws?client=truncated")
    peer.send_raw(bytes([0x81, 0x80 | 100]) + b"\x01\x02\x03\x04" + b"A" * 10)  # 10 of 100 bytes
    time.sleep(0.05)
    peer.fin()
    assert peer.expect_eof()


def raw_reset(daemon):
    peer = RawPeer(daemon.port, "/ws?client=reset")
    peer.send_frame(0x2, b"\x00")
    peer.read_frame()
    peer.reset()


def raw_pong_timeout(daemon):
    """Sends a frame every 150 ms (so the read deadline never fires) but never answers pings."""
    peer = RawPeer(daemon.port, "/ws?client=pong_timeout")
    peer.sock.settimeout(0.15)
    pings = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        peer.send_frame(0x1, b"busy")
        try:
            while True:
                opcode, payload = peer.read_frame()
                if opcode == 0x9:
                    pings += 1
                if opcode == 0x8:
                    assert pings >= 1
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
        except socket.timeout:
            continue
    raise AssertionError("no close within 10 s")


def raw_read_deadline(daemon):
    peer = RawPeer(daemon.port, "/ws?client=read_deadline")
    return peer.read_until_close()


def raw_violation(daemon, client, send):
    """Sends a violation and expects the close status, then TCP closed at once: vigild fails the
    connection (RFC 6455 §7.1.7) without waiting for an answer, which this peer never sends."""
    peer = RawPeer(daemon.port, f"/ws?client={client}")
    send(peer)
    code, reason = peer.read_until_close()
    assert peer.expect_eof(timeout=1)
    return code, reason


def raw_slow_consumer(daemon):
    """Writes echo requests as fast as it can and never reads."""
    peer = RawPeer(daemon.port, "/ws?client=slow_consumer")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.sock.settimeout(5)
    chunk = b"\x82\xfe\x40\x00" + b"\x00\x00\x00\x00" + b"z" * 16384  # masked binary, 16 KiB, zero mask
    sent = 0
    try:
        while sent < 200 * 1024 * 1024:
            peer.sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    peer.close()
    return sent


def test_every_row_agrees_everywhere(vigild):
    daemon = vigild(*FLAGS)
    expected = {}  # client -> (kind, code, cause, initiator, clean, reason)

    # A live connection is visible in /connections with its client name, then closes normally.
    async def live_then_normal():
        async with connect(daemon, "normal") as ws:
            for index in range(3):
                await ws.send(f"m{index}")
                assert await ws.recv() == f"m{index}"
            listing = daemon.get_json("/connections")
            assert listing["count"] == 1
            live = listing["connections"][0]
            assert live["client"] == "normal" and live["path"] == "/ws"
            assert live["messages_in"] == 3 and live["messages_out"] == 3
            assert RFC3339.match(live["opened_at"]) and RFC3339.match(live["last_seen_at"])
            assert daemon.get_json(f"/connections/{live['id']}")["id"] == live["id"]
            await ws.close(1000, "bye")

    asyncio.run(live_then_normal())
    expected["normal"] = ("normal", 1000, "peer_close", "peer", True, "bye")

    raw_no_status(daemon)
    expected["no_status"] = ("normal", 1005, "peer_close", "peer", True, "")

    asyncio.run(ws_close_with(daemon, "going_away", 1001, "navigating"))
    expected["going_away"] = ("going_away", 1001, "peer_close", "peer", True, "navigating")

    asyncio.run(ws_close_with(daemon, "app_error", 4000, "app says no"))
    expected["app_error"] = ("error", 4000, "peer_close", "peer", True, "app says no")

    raw_close_code(daemon, "internal_error", 1011)
    expected["internal_error"] = ("error", 1011, "peer_close", "peer", True, "because")

    raw_eof(daemon)
    expected["eof"] = ("eof", 1006, "eof", "peer", False, "")

    raw_truncated(daemon)
    expected["truncated"] = ("abnormal", 1006, "truncated_frame", "peer", False, "")

    raw_reset(daemon)
    expected["reset"] = ("abnormal", 1006, "reset", "peer", False, "")

    assert raw_pong_timeout(daemon) == (1008, "pong timeout")
    expected["pong_timeout"] = ("abnormal", 1006, "pong_timeout", "vigild", False, "")

    assert raw_read_deadline(daemon) == (1008, "read deadline exceeded")
    expected["read_deadline"] = ("abnormal", 1006, "read_deadline", "vigild", False, "")

    violations = {
        "unmasked": (lambda p: p.send_frame(0x1, b"x", mask=False), 1002, "protocol_error", "unmasked client frame"),
        "reserved_bits": (lambda p: p.send_frame(0x1, b"x", rsv=4), 1002, "protocol_error",
                          "reserved bits set without a negotiated extension"),
        "unknown_opcode": (lambda p: p.send_frame(0x3, b""), 1002, "protocol_error", "unknown opcode 0x3"),
        "bad_close_code": (lambda p: p.send_frame(0x8, struct.pack("!H", 1005)), 1002, "protocol_error",
                           "invalid close code 1005"),
        "bad_utf8": (lambda p: p.send_frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007,
                     "invalid_utf8", "text message is not valid UTF-8"),
        "too_big_fragments": (lambda p: (p.send_frame(0x2, b"a" * 40000, fin=False), p.send_frame(0x0, b"b" * 40000)),
                              1009, "message_too_big", "message exceeds 65536 bytes"),
    }
    for client, (send, code, cause, reason) in violations.items():
        assert raw_violation(daemon, client, send) == (code, reason), client
        # Failed, so no close handshake; except that a bad close frame was itself the peer's close.
        expected[client] = ("error", code, cause, "vigild", client == "bad_close_code", reason)

    # A frame over max_frame fails NIO's decoder from its header: 1009 at once.
    assert asyncio.run(ws_too_big(daemon, "too_big_frame")) == 1009
    expected["too_big_frame"] = ("error", 1009, "message_too_big", "vigild", False, "frame exceeds the size limit")

    # So do control frames that are too long or fragmented: 1002 at once.
    decoder_errors = {
        "long_ping": (lambda p: p.send_frame(0x9, b"p" * 126), "control frame longer than 125 bytes"),
        "fragmented_ping": (lambda p: p.send_frame(0x9, b"p", fin=False), "fragmented control frame"),
    }
    for client, (send, reason) in decoder_errors.items():
        assert raw_violation(daemon, client, send) == (1002, reason), client
        expected[client] = ("error", 1002, "protocol_error", "vigild", False, reason)

    assert raw_slow_consumer(daemon) < 200 * 1024 * 1024
    expected["slow_consumer"] = ("abnormal", 1006, "slow_consumer", "vigild", False, "")

    records = daemon.wait_closes(len(expected))
    assert len(records) == len(expected), [r["client"] for r in records]
    by_client = {record["client"]: record for record in records}
    assert set(by_client) == set(expected)
    for client, (kind, code, cause, initiator, clean, reason) in expected.items():
        record = by_client[client]
        got = (record["kind"], record["code"], record["cause"], record["initiator"], record["clean"], record["reason"])
        assert got == (kind, code, cause, initiator, clean, reason), client
        assert record["path"] == "/ws"
        assert re.match(r"^127\.0\.0\.1:\d+$", record["peer"])
        assert RFC3339.match(record["opened_at"]) and RFC3339.match(record["closed_at"])
        assert record["opened_at"] <= record["closed_at"]
        assert record["duration_ms"] >= 0
    assert by_client["normal"]["messages_in"] == 3 and by_client["normal"]["messages_out"] == 3
    assert by_client["pong_timeout"]["duration_ms"] >= 1000  # never before P + T
    ids = [record["id"] for record in records]
    assert ids == sorted(ids, reverse=True), "newest first"

    kinds = collections.Counter(value[0] for value in expected.values())
    causes = collections.Counter(value[2] for value in expected.values())
    status = daemon.get_json("/status")
    assert status["closes"] == {kind: kinds.get(kind, 0) for kind in ["normal", "going_away", "abnormal", "eof", "error"]}
    assert {cause: n for cause, n in status["causes"].items() if n} == dict(causes)
    assert status["closes_total"] == len(expected)
    assert status["connections"] == 0
    assert status["config"]["ping_interval"] == "500ms"

    metrics = daemon.metrics()
    pairs = collections.Counter((value[0], value[2]) for value in expected.values())
    for (kind, cause), count in pairs.items():
        assert metrics[f'vigil_closes_total{{kind="{kind}",cause="{cause}",leg="client"}}'] == count
    assert sum(v for k, v in metrics.items() if k.startswith("vigil_closes_total")) == len(expected)
    assert metrics['vigil_connections_opened_total{leg="client"}'] == len(expected)
    assert metrics['vigil_connections_active{leg="client"}'] == 0
    assert daemon.get_json("/connections") == {"count": 0, "connections": [], "next": None}

    for kind in kinds:
        filtered = daemon.closes(f"?kind={kind}")
        assert filtered["total"] == kinds[kind]
        assert all(record["kind"] == kind for record in filtered["closes"])
    assert daemon.closes("?cause=reset&limit=1")["total"] == 1
    assert daemon.closes("?client=eof")["closes"][0]["cause"] == "eof"
    assert len(daemon.closes("?limit=2")["closes"]) == 2

    # Shutdown: the last row. The peer hears 1001, the process exits 0, and the log holds one
    # close line per connection, the shutdown included.
    async def shutdown_row():
        async with connect(daemon, "shutdown") as ws:
            await ws.send("ping")
            await ws.recv()
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                return closed.rcvd.code, closed.rcvd.reason
        return None

    assert asyncio.run(shutdown_row()) == (1001, "vigild shutting down")
    assert daemon.stop() == 0
    close_lines = [entry for entry in daemon.json_logs() if entry.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert len(close_lines) == len(expected) + 1
    last = [entry for entry in close_lines if entry.get("ws_client") == "shutdown"][0]
    assert (last["ws_close_kind"], last["ws_close_code"], last["ws_close_cause"], last["ws_close_initiator"],
            last["ws_close_clean"], last["ws_path"]) == ("going_away", "1001", "shutdown", "vigild", "true", "/ws")
    assert last["level"] == "info"
    levels = {entry["ws_client"]: entry["level"] for entry in close_lines}
    assert levels["eof"] == "notice" and levels["reset"] == "warning" and levels["unmasked"] == "warning"
    assert re.match(r"connection \d+ from 127\.0\.0\.1:\d+ \(client=reset\) closed: abnormal \(reset\) after \d+ms",
                    [e for e in close_lines if e["ws_client"] == "reset"][0]["message"])
