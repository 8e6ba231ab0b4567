"""Refused handshakes: each gets its HTTP status with a short body, a log line naming the
value, a count in vigil_handshakes_rejected_total{reason}, and vigild keeps serving."""

import asyncio
import socket
import time

import pytest
import websockets

from conftest import run_vigild
from wsraw import KEY, handshake_request, read_http_response


def exchange(port, request, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_http_response(sock)


CASES = [
    ("wrong path", handshake_request("/nope"), 404, "not_found", b"no WebSocket route at /nope"),
    ("plain GET on the route", b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, "not_websocket", b"accepts WebSocket upgrades only"),
    ("wrong version", handshake_request(version="8"), 426, "unsupported_version", b'unsupported Sec-WebSocket-Version "8"'),
    ("missing key", handshake_request(key=""), 400, "invalid_key", b"invalid Sec-WebSocket-Key"),
    ("malformed key", handshake_request(key="not-base64"), 400, "invalid_key", b'invalid Sec-WebSocket-Key "not-base64"'),
    ("bad method", handshake_request(method="POST"), 405, "bad_method", b"must use GET, not POST"),
    ("Connection without upgrade", handshake_request(connection="keep-alive"), 400, "missing_connection_upgrade",
     b'Connection "keep-alive" does not name upgrade'),
    ("long client name", handshake_request("/ws?client=" + "x" * 65), 400, "bad_client_name", b"client name"),
    ("control bytes in client name", handshake_request("/ws?client=a%01b"), 400, "bad_client_name", b"client name"),
]


@pytest.mark.parametrize("name,request_bytes,status,reason,body", CASES, ids=[c[0] for c in CASES])
def test_refused_handshakes(vigild, name, request_bytes, status, reason, body):
    daemon = vigild()
    got_status, headers, got_body = exchange(daemon.port, request_bytes)
    assert got_status == status, got_body
    assert body in got_body
    assert headers.get("connection") == "close"
    if status == 426 and reason == "unsupported_version":
        assert headers.get("sec-websocket-version") == "13"
    assert daemon.metrics()[f'vigil_handshakes_rejected_total{{reason="{reason}"}}'] == 1
    assert daemon.metrics()['vigil_connections_opened_total{leg="client"}'] == 0
    daemon.wait_for_log(lambda line: line.get("reason") == reason and "rejected handshake" in line["message"])
    assert daemon.closes()["total"] == 0, "a refused handshake is not a connection"
    assert_still_serving(daemon)


def test_a_request_pipelined_behind_a_handshake_without_the_upgrade_token_is_refused_not_fatal(vigild):
    """Found by FuzzConnection (Fuzz/regressions/connection/): `Connection` without the upgrade
    token, and a second request in the same segment. NIO's parser does not stop after a head
    that does not name the upgrade in `Connection`, so the second request was parsed as HTTP,
    vigild answered 101, and that request reached the WebSocket decoder after it: NIO's type
    check there killed the process, and every live connection with it. Now: 400, and a token in
    a list (`keep-alive, Upgrade`) still upgrades."""
    daemon = vigild()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(handshake_request("/ws?client=fuzz", host="x", connection="Urpgade")
                     + b"GET /ws?client=fuzz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Sec-WebSocket-Version: 13\r\n\r\n")
        status, _, body = read_http_response(sock)
    assert status == 400 and b'Connection "Urpgade" does not name upgrade' in body, body
    time.sleep(0.3)
    assert daemon.proc.poll() is None, "vigild is still running"
    assert_still_serving(daemon)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(handshake_request(connection="keep-alive, Upgrade"))
        assert read_http_response(sock)[0] == 101


def test_non_http_bytes_get_400_and_count(vigild):
    daemon = vigild()
    status, headers, body = exchange(daemon.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
    assert status == 400
    assert body.startswith(b"malformed HTTP request: ") and headers.get("connection") == "close"
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="bad_request"}'] == 1
    logged = daemon.wait_for_log(lambda line: "malformed HTTP" in line["message"])
    assert logged["first_bytes"] == r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\x0d\x0a\x0d\x0a", logged
    assert logged["status"] == "400" and logged["first_bytes"] in logged["message"]
    assert daemon.closes()["total"] == 0, "a refused handshake is not a connection"
    assert_still_serving(daemon)


def test_over_capacity_gets_503_and_existing_connections_stay(vigild):
    daemon = vigild("--max-connections", "2")

    async def scenario():
        async with websockets.connect(daemon.ws("?client=a")) as a, websockets.connect(daemon.ws("?client=b")) as b:
            status, headers, body = exchange(daemon.port, handshake_request())
            assert status == 503
            assert b"limit of 2 connections" in body
            assert headers.get("retry-after") == "5"
            for ws in (a, b):
                await ws.send("still fine")
                assert await ws.recv() == "still fine"
        # Slots come back once they close.
        await asyncio.sleep(0.1)
        async with websockets.connect(daemon.ws()) as c:
            await c.send("x")
            assert await c.recv() == "x"

    asyncio.run(scenario())
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="capacity"}'] == 1


def test_handshake_timeout_cuts_a_trickling_client(vigild):
    daemon = vigild("--handshake-timeout", "300ms")
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /ws HTTP/1.1\r\n")  # and then nothing
        assert sock.recv(100) == b""
        assert time.monotonic() - started >= 0.3
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="handshake_timeout"}'] == 1
    assert_still_serving(daemon)


def test_hanging_up_before_the_handshake_is_counted(vigild):
    daemon = vigild()
    socket.create_connection(("127.0.0.1", daemon.port), timeout=5).close()  # like a TCP health check
    deadline = time.monotonic() + 5
    while daemon.metrics().get('vigil_handshakes_rejected_total{reason="closed_during_handshake"}') != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert daemon.closes()["total"] == 0
    assert_still_serving(daemon)


def test_handshake_and_first_frame_in_one_packet(vigild):
    """A client that sends its first frame right behind the request loses nothing."""
    from wsraw import frame
    daemon = vigild()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(handshake_request() + frame(0x1, b"eager"))
        status, _, rest = read_http_response(sock)
        assert status == 101
        while len(rest) < 7:
            rest += sock.recv(100)
        assert rest[:7] == b"\x81\x05eager"


def assert_still_serving(daemon):
    async def echo():
        async with websockets.connect(daemon.ws()) as ws:
            await ws.send("alive")
            assert await ws.recv() == "alive"
    asyncio.run(echo())


def test_oversized_headers_get_431_with_a_body(vigild):
    daemon = vigild()
    request = b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # vigild may answer and close before reading it all
        status, headers, body = read_http_response(sock)
    assert status == 431
    assert body.startswith(b"malformed HTTP request: ") and headers.get("connection") == "close"
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="headers_too_large"}'] == 1
    logged = daemon.wait_for_log(lambda line: "malformed HTTP" in line["message"])
    assert logged["status"] == "431" and logged["first_bytes"].startswith("GET /ws HTTP/1.1\\x0d\\x0aHost: x")
    assert logged["first_bytes"].endswith("…"), "the rest of the request is not kept"
    assert daemon.closes()["total"] == 0, "a refused handshake is not a connection"
    assert_still_serving(daemon)


def origin_answer(daemon, origin=None, host=None):
    """The status and body vigild answers a handshake with, given its Origin header (or none)."""
    host = host or f"127.0.0.1:{daemon.port}"
    extra = f"Origin: {origin}\r\n" if origin else ""
    status, _, body = exchange(daemon.port, handshake_request("/ws", host=host, extra=extra))
    return status, body.decode()


def test_the_origin_policy_on_the_wire(vigild):
    """The same rules the browser tests see, with the Origin header written by hand: the default
    same-origin rule, a subdomain wildcard, require_origin, and the 403's body."""
    daemon = vigild()
    port = daemon.port
    assert origin_answer(daemon, f"http://127.0.0.1:{port}")[0] == 101
    assert origin_answer(daemon, f"HTTP://127.0.0.1:{port}")[0] == 101, "scheme and host compared without case"
    assert origin_answer(daemon)[0] == 101, "no Origin: not a browser, admitted"
    status, body = origin_answer(daemon, "https://evil.example")
    assert status == 403
    assert body == f"origin https://evil.example is not the same origin as Host 127.0.0.1:{port}; " \
                   "set allowed_origins to admit it\n", body
    assert origin_answer(daemon, f"http://127.0.0.1:{port + 1}")[0] == 403, "another port is another origin"

    wild = vigild("--allowed-origins", "https://*.example.com,https://app.example.org", "--require-origin", "true")
    for origin in ("https://a.example.com", "https://b.a.example.com", "https://A.EXAMPLE.COM:443",
                   "https://app.example.org"):
        assert origin_answer(wild, origin)[0] == 101, origin
    for origin in ("https://example.com", "http://a.example.com", "https://a.example.com.evil.net",
                   "https://evilexample.com", "https://a.example.com:8443", "https://x.app.example.org", "null"):
        status, body = origin_answer(wild, origin)
        assert status == 403 and origin in body and "allowed_origins" in body, (origin, body)
    status, body = origin_answer(wild)
    assert status == 403 and "require_origin" in body, body
    refused = wild.metrics()['vigil_handshakes_rejected_total{reason="origin"}']
    assert refused == 8
    star = vigild("--allowed-origins", "*")
    for origin in ("https://anything.example", "null", "http://h/?q"):
        assert origin_answer(star, origin)[0] == 101, f"* admits {origin}"


# (Origin, Host or None for the daemon's own 127.0.0.1:PORT); PORT stands for the daemon's port.
SAME_ORIGIN_ADMITTED = [
    ("http://127.0.0.1:PORT/", None),                  # golang.org/x/net/websocket, as Go code writes it
    ("http://127.0.0.1:PORT/server/page.html", None),  # a path is ignored, as gorilla ignores it
    ("HTTP://127.0.0.1:PORT/", None),
    ("http://localhost:PORT", "LOCALHOST:PORT"),
    ("http://localhost.:PORT/", "localhost:PORT"),     # one trailing dot names the same host
    ("http://localhost:PORT", "localhost.:PORT"),
    ("http://app.example.com", "app.example.com:80"),  # default ports
    ("https://app.example.com:443/", "app.example.com"),
    ("http://[::1]:PORT/", "[::1]:PORT"),              # IPv6 in brackets, in any of its spellings
    ("http://[0:0::1]:PORT", "[::1]:PORT"),
]
SAME_ORIGIN_REFUSED = [
    ("http://127.0.0.1:PORT/?q=1", None),              # a query, a fragment, userinfo: opaque
    ("http://127.0.0.1:PORT/#top", None),
    ("http://me@127.0.0.1:PORT/", None),
    ("http://127.0.0.1:PORT:1/", None),
    ("ws://127.0.0.1:PORT/", None),
    ("http://app.example.com", "app.example.com:443"),
    ("https://app.example.com/", "app.example.com:80"),
    ("http://localhost..:PORT/", "localhost:PORT"),
    ("http://[::2]:PORT/", "[::1]:PORT"),
]


def test_origins_as_real_clients_send_them(vigild):
    """Every form the Origin rules name, admitted and refused, with raw requests: at the defaults
    (same origin) and with allowed_origins written as an operator would (a trailing /, a trailing
    dot, upper case), which --print-config shows canonical."""
    daemon = vigild()
    fill = lambda text: text.replace("PORT", str(daemon.port)) if text else text
    for origin, host in SAME_ORIGIN_ADMITTED:
        assert origin_answer(daemon, fill(origin), fill(host)) == (101, ""), (origin, host)
    for origin, host in SAME_ORIGIN_REFUSED:
        status, body = origin_answer(daemon, fill(origin), fill(host))
        assert status == 403 and fill(origin) in body, (origin, host, body)
    assert "is not an origin vigild can check" in origin_answer(daemon, fill("http://127.0.0.1:PORT/?q=1"))[1]
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="origin"}'] == len(SAME_ORIGIN_REFUSED) + 1

    listed = vigild("--allowed-origins", "https://App.Example.com/, https://*.example.org., http://[0::1]:3000/")
    for origin in ("https://app.example.com", "https://app.example.com/", "https://APP.EXAMPLE.COM.:443/x",
                   "https://a.example.org/", "https://b.a.example.org.", "http://[::1]:3000/"):
        assert origin_answer(listed, origin)[0] == 101, origin
    for origin in ("http://app.example.com/", "https://app.example.com/?x", "https://example.org/",
                   "https://a.example.org:8443/", "http://[::1]:3001", "null"):
        status, body = origin_answer(listed, origin)
        assert status == 403 and origin in body and "allowed_origins" in body, (origin, body)
    status, body = origin_answer(listed, "https://evil.example/")
    assert body == "origin https://evil.example/ is not in allowed_origins " \
                   "(https://app.example.com, https://*.example.org, http://[::1]:3000)\n", body


def test_allowed_origins_are_shown_canonical_and_a_path_is_refused():
    result = run_vigild("--allowed-origins", "https://App.Example.com/, https://*.example.org.", "--print-config")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines["allowed_origins"] == "https://app.example.com,https://*.example.org"
    result = run_vigild("--allowed-origins", "https://app.example.com/app")
    assert result.returncode == 2
    assert 'invalid value "https://app.example.com/app" for allowed_origins (flag --allowed-origins): ' \
           'expected origins without a path, such as https://app.example.com ' \
           '("https://app.example.com/app" has the path "/app"; an origin is a scheme, host and port)' in result.stderr, \
        result.stderr
