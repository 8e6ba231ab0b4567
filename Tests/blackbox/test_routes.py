"""Routes and upstream pools (#28) against the real vigild and independent Python backends
(backend.py, each its own process, so one can be killed or frozen): which route a handshake
takes (Host, then the longest path prefix on `/` boundaries), how its path is rewritten, how a
pool spreads pairs and steps over members that fail, what a reload and `drain: true` do to live
pairs, and what the status API, the metrics and vigilctl say.

Which backend took a pair is told by the backend itself: every request carries the query
`probe=/headers`, so backend.py's first message reports the path it was asked for and its own
`Host` (its port), independently of vigild's records."""

import asyncio
import collections
import json
import os
import re
import signal
import socket
import struct
import textwrap
import threading
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from conftest import ROOT, rfc3339_ns, run_vigild
from test_proxy import Backend, backend  # noqa: F401 (the fixture)
from test_vigilctl import ctl
from wsraw import FrameStream, frame, handshake_request, read_http_response

PROBE = "probe=/headers"
DEPLOY = os.path.join(ROOT, "deploy")


# --- helpers -----------------------------------------------------------------------------------

def write_config(tmp_path, text, name="vigil.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def probed(path):
    """`path` with the query that makes backend.py report the request first."""
    return path + ("&" if "?" in path else "?") + PROBE


def backend_port(report):
    (host,) = [value for name, value in report["headers"] if name.lower() == "host"]
    return int(host.rsplit(":", 1)[1])


def ws_connect(daemon, path, **kwargs):
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("open_timeout", 30)
    return websockets.connect(f"ws://127.0.0.1:{daemon.port}{path}", **kwargs)


async def open_on(daemon, path, **kwargs):
    """A connection through a proxy route, once its backend has reported itself:
    (ws, the backend's port, the path the backend was asked for)."""
    ws = await ws_connect(daemon, probed(path), **kwargs)
    report = json.loads(await asyncio.wait_for(ws.recv(), 15))
    return ws, backend_port(report), report["path"]


class RawClient(FrameStream):
    """A handshake on a bare socket, with the Host header and extra lines a test chooses."""

    def __init__(self, daemon, path, host=None, extra=""):
        self.sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=20)
        self.sock.sendall(handshake_request(path, host=host or f"127.0.0.1:{daemon.port}", extra=extra))
        self.status, self.headers, self.buffer = read_http_response(self.sock)

    def text(self):
        while True:
            opcode, payload, _ = self.read_masked_frame()
            if opcode == 0x1:
                return payload.decode()
            assert opcode in (0x9, 0xA), (opcode, payload)

    def close(self):
        try:
            if self.status == 101:
                self.sock.sendall(frame(0x8, struct.pack("!H", 1000)))
        except OSError:
            pass
        self.sock.close()


def landing(daemon, path, host=None):
    """Where a handshake for `path` (Host `host`) lands on proxy routes: (101, backend port,
    the path the backend was asked for), or (status, None, body) when refused."""
    client = RawClient(daemon, probed(path), host)
    try:
        if client.status != 101:
            return client.status, None, client.buffer.decode("utf-8", "replace")
        report = json.loads(client.text())
        return 101, backend_port(report), report["path"]
    finally:
        client.close()


def raw_status(daemon, path, host=None, extra=""):
    """The HTTP status (and body) vigild answers a handshake with."""
    client = RawClient(daemon, path, host, extra)
    try:
        return client.status, client.headers, client.buffer
    finally:
        client.close()


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(samples, name):
    """[(labels, value)] of one metric, whatever order its labels come in."""
    out = []
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base == name:
            out.append((dict(LABEL.findall(rest)), value))
    return out


def total(samples, name, **labels):
    return sum(value for found, value in series(samples, name)
               if all(found.get(k) == v for k, v in labels.items()))


def upstream_up(daemon, route, member):
    matches = [v for labels, v in series(daemon.metrics(), "vigil_upstream_up")
               if labels.get("route") == route and labels.get("upstream") == member]
    return matches[0] if matches else None


def until(predicate, timeout, what):
    """Polls `predicate` until it returns something true; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


async def until_async(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def reload(daemon, config, text):
    """Rewrites the config file, sends SIGHUP and waits for vigild to say it reloaded."""
    def outcomes():
        return [e["message"] for e in daemon.json_logs()
                if e.get("message", "").startswith(("configuration reloaded", "reload failed"))]

    before = len(outcomes())
    config.write_text(textwrap.dedent(text).lstrip("\n"))
    daemon.proc.send_signal(signal.SIGHUP)
    until(lambda: len(outcomes()) > before, 15, "the reload")
    latest = outcomes()[before]
    assert latest.startswith("configuration reloaded"), latest


def routes(daemon):
    return {route["name"]: route for route in daemon.get_json("/routes")["routes"]}


def member_pairs(daemon, route):
    return {m["name"]: m["pairs"] for m in routes(daemon)[route]["members"]}


async def closed_with(ws, timeout=30):
    """(code, reason, when) of the close a connection that is sent nothing gets."""
    try:
        message = await asyncio.wait_for(ws.recv(), timeout)
        raise AssertionError(f"expected a close, got {message!r}")
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        return (rcvd.code if rcvd else None), (rcvd.reason if rcvd else None), time.monotonic()


async def echoes(ws, text):
    await ws.send(text)
    assert await asyncio.wait_for(ws.recv(), 15) == text


class RawListener:
    """An upstream that fails a handshake on a bare socket: `close` (reads the request, closes
    unanswered), `reset` (reads it, resets), `garbage` (answers something that is not HTTP)."""

    def __init__(self, how):
        self.how = how
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                sock.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                if self.how == "garbage":
                    sock.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
                elif self.how == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            finally:
                sock.close()

    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def close(self):
        self.listener.close()


def dead_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- choosing a route ------------------------------------------------------------------------

def test_two_routes_to_two_backends(vigild, backend, tmp_path):
    """`/chat` and `/feed` go to their own backend; the records carry the route on both legs."""
    chat, feed = backend(), backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: chat
            path: /chat
            upstream: {chat.url()}
          - name: feed
            path: /feed
            upstream: {feed.url()}
    """)
    daemon = vigild("--config", str(config))

    async def scenario():
        ws_chat, port_chat, seen_chat = await open_on(daemon, "/chat/room1?client=c")
        ws_feed, port_feed, seen_feed = await open_on(daemon, "/feed/prices?client=f")
        await echoes(ws_chat, "hello chat")
        await echoes(ws_feed, "hello feed")
        live = (await asyncio.to_thread(daemon.get_json, "/connections"))["connections"]
        await ws_chat.close()
        await ws_feed.close()
        return port_chat, seen_chat, port_feed, seen_feed, live

    port_chat, seen_chat, port_feed, seen_feed, live = asyncio.run(scenario())
    assert (port_chat, seen_chat) == (chat.port, probed("/chat/room1?client=c"))
    assert (port_feed, seen_feed) == (feed.port, probed("/feed/prices?client=f"))
    by_client = collections.defaultdict(dict)
    for entry in live:
        by_client[entry["client"]][entry["leg"]] = entry
    for client, route, url in (("c", "chat", chat.url()), ("f", "feed", feed.url())):
        legs = by_client[client]
        assert set(legs) == {"client", "upstream"}, legs
        for leg in legs.values():
            assert (leg["route"], leg["member"], leg["upstream"]) == (route, f"{route}-1", url), leg
    records = daemon.wait_closes(4)
    assert sorted((r["client"], r["leg"], r["route"], r["member"]) for r in records) == [
        ("c", "client", "chat", "chat-1"), ("c", "upstream", "chat", "chat-1"),
        ("f", "client", "feed", "feed-1"), ("f", "upstream", "feed", "feed-1")]
    status, _, body = raw_status(daemon, "/nowhere")
    assert status == 404 and "/nowhere" in body.decode(), (status, body)


def test_the_host_header_chooses_among_routes_then_the_path(vigild, backend, tmp_path):
    """nginx's server_name, then location: routes naming the request's host (exact, case
    insensitive, port and trailing dot ignored; `*.` wildcards; lists) are the only candidates
    when there are any, else the routes without `host`."""
    app, wild, listed, fallback = backend(), backend(), backend(), backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: app
            host: app.example.com
            path: /chat
            upstream: {app.url()}
          - name: wild
            host: "*.example.org"
            path: /
            upstream: {wild.url()}
          - name: listed
            host: [one.test, two.test]
            path: /
            upstream: {listed.url()}
          - name: fallback
            path: /
            upstream: {fallback.url()}
    """)
    daemon = vigild("--config", str(config))
    cases = [
        ("app.example.com", "/chat", app),
        ("APP.Example.COM:8443", "/chat/x", app),
        ("app.example.com.", "/chat", app),
        ("x.example.org", "/anything", wild),
        ("Deep.Example.ORG:80", "/chat", wild),
        ("one.test", "/x", listed),
        ("two.test:9999", "/chat", listed),
        ("elsewhere.net", "/chat", fallback),
        (None, "/chat", fallback),  # 127.0.0.1:PORT
        ("example.com", "/chat", fallback),
        ("notapp.example.com", "/chat", fallback),
    ]
    for host, path, expected in cases:
        status, port, seen = landing(daemon, path, host)
        assert (status, port) == (101, expected.port), (host, path, status, seen)
        assert seen == probed(path)
    # app.example.com is named by a route: only its routes are candidates, and none has /other.
    status, _, body = landing(daemon, "/other", "app.example.com")
    assert status == 404 and "/other" in body, (status, body)


def test_the_path_prefix_on_slash_boundaries_longest_wins(vigild, backend, tmp_path):
    chat, admin, catch_all = backend(), backend(), backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: chat
            path: /chat
            upstream: {chat.url()}
          - name: admin
            path: /chat/admin/
            upstream: {admin.url()}
          - name: all
            path: /
            upstream: {catch_all.url()}
    """)
    daemon = vigild("--config", str(config))
    cases = [
        ("/chat", chat), ("/chat/", chat), ("/chat/x", chat), ("/chat?room=1", chat),
        ("/chatroom", catch_all), ("/chat/administrator", chat), ("/chat/admin", admin),
        ("/chat/admin/", admin), ("/chat/admin/users/7", admin), ("/", catch_all),
        ("/other/chat", catch_all),
    ]
    for path, expected in cases:
        status, port, seen = landing(daemon, path)
        assert (status, port, seen) == (101, expected.port, probed(path)), (path, status, port, seen)
    assert routes(daemon)["admin"]["path"] == "/chat/admin", "a trailing / is dropped"

    # Without a catch-all, a path outside every prefix is 404 naming the path.
    echo_only = write_config(tmp_path, """
        routes:
          - name: chat
            path: /chat
            mode: echo
    """, name="echo.yaml")
    other = vigild("--config", str(echo_only))
    for path in ("/chatroom", "/", "/cha"):
        status, _, body = raw_status(other, path)
        assert status == 404 and path in body.decode(), (path, status, body)
    for path in ("/chat", "/chat/", "/chat/deeper"):
        assert raw_status(other, path)[0] == 101, path


def test_the_upstream_urls_path_replaces_the_routes_prefix(vigild, backend, tmp_path):
    b = backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: feed
            path: /feed
            upstream: {b.url('/stream')}
          - name: keep
            path: /keep
            upstream: {b.url()}
          - name: strip
            path: /strip
            upstream: {b.url('/')}
          - name: deep
            path: /a/b
            upstream: {b.url('/c')}
    """)
    daemon = vigild("--config", str(config))
    cases = [
        ("/feed/x?q=1", "/stream/x?q=1"),
        ("/feed", "/stream"),
        ("/feed?q=2", "/stream?q=2"),
        ("/feed/", "/stream/"),
        ("/keep/y?z=1", "/keep/y?z=1"),
        ("/keep", "/keep"),
        ("/strip", "/"),
        ("/strip/x", "/x"),
        ("/a/b/c?d=1", "/c/c?d=1"),
    ]
    for path, expected in cases:
        status, port, seen = landing(daemon, path)
        assert (status, seen) == (101, probed(expected)), (path, status, seen)


# --- pools -------------------------------------------------------------------------------------

def test_a_pool_of_three_keeps_serving_while_one_member_is_killed_and_one_frozen(vigild, backend, tmp_path):
    """Clients keep connecting while one member is SIGKILLed and another SIGSTOPped: no new
    client's handshake fails; the killed member's pairs end 1014 at once, the frozen one's 1014
    after the upstream leg's pong timeout (a route override); both show down in
    vigil_upstream_up, and the frozen one is up again once it answers again."""
    b1, b2, b3 = backend(), backend(), backend()
    member = {b1.port: "pool-1", b2.port: "pool-2", b3.port: "pool-3"}
    config = write_config(tmp_path, f"""
        upstream_try_timeout: 500ms
        routes:
          - name: pool
            path: /
            upstream:
              - {b1.url()}
              - {b2.url()}
              - {b3.url()}
            upstream_ping_interval: 500ms
            upstream_pong_timeout: 1s
    """)
    daemon = vigild("--config", str(config))
    outcomes = []  # (what, backend port or None, detail, when)

    async def churn(tag, stop):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                ws = await ws_connect(daemon, probed(f"/churn?client={tag}-{n}"))
            except Exception as error:  # the handshake failed: what must never happen
                outcomes.append(("handshake_failed", None, repr(error), time.monotonic()))
                continue
            port = None
            try:
                port = backend_port(json.loads(await asyncio.wait_for(ws.recv(), 15)))
                await echoes(ws, f"{tag}-{n}")
                await ws.close()
                outcomes.append(("ok", port, None, time.monotonic()))
            except ConnectionClosed as closed:  # the pair's member died under it
                outcomes.append(("pair_ended", port, closed.rcvd.code if closed.rcvd else None, time.monotonic()))
            except Exception as error:
                outcomes.append(("pair_error", port, repr(error), time.monotonic()))
            await asyncio.sleep(0.05)

    def oks(since, port=None):
        return [o for o in outcomes if o[0] == "ok" and o[3] >= since and (port is None or o[1] == port)]

    async def scenario():
        held = []
        for i in range(6):
            ws, port, _ = await open_on(daemon, f"/held{i}?client=held{i}")
            held.append((ws, port))
        assert sorted(collections.Counter(port for _, port in held).values()) == [2, 2, 2]
        watchers = {port: [asyncio.create_task(closed_with(ws, 60)) for ws, p in held if p == port]
                    for port in (b1.port, b2.port)}
        stop = asyncio.Event()
        churners = [asyncio.create_task(churn(tag, stop)) for tag in ("a", "b")]
        start = time.monotonic()
        await until_async(lambda: len(oks(start)) >= 6, 30, "churn before the kill")

        killed = time.monotonic()
        b1.proc.kill()
        ends_killed = await asyncio.gather(*watchers[b1.port])
        await until_async(lambda: len(oks(killed)) >= 6, 30, "churn after the kill")

        frozen = time.monotonic()
        b2.proc.send_signal(signal.SIGSTOP)
        ends_frozen = await asyncio.gather(*watchers[b2.port])
        await until_async(lambda: upstream_up(daemon, "pool", "pool-1") == 0 and
                          upstream_up(daemon, "pool", "pool-2") == 0, 30, "pool-1 and pool-2 down")
        both_down = time.monotonic()
        await until_async(lambda: len(oks(both_down)) >= 6, 30, "churn with two members down")
        served_meanwhile = {o[1] for o in oks(both_down)}

        thawed = time.monotonic()
        b2.proc.send_signal(signal.SIGCONT)
        await until_async(lambda: upstream_up(daemon, "pool", "pool-2") == 1, 60, "pool-2 up again")
        await until_async(lambda: oks(thawed, b2.port), 30, "a new pair on pool-2 after it answered again")
        stop.set()
        await asyncio.gather(*churners)
        for ws, port in held:
            if port == b3.port:
                await echoes(ws, "still here")
                await ws.close()
        return ends_killed, ends_frozen, served_meanwhile

    ends_killed, ends_frozen, served_meanwhile = asyncio.run(scenario())
    failed = [o for o in outcomes if o[0] in ("handshake_failed", "pair_error")]
    assert failed == [], f"{len(failed)} new clients failed: {failed[:3]}"
    ended = [o for o in outcomes if o[0] == "pair_ended"]
    assert all(o[2] == 1014 and o[1] in (None, b1.port, b2.port) for o in ended), ended
    print(f"{len(oks(0))} churned pairs, {len(ended)} cut by the kill or the freeze")
    assert [(code, reason.startswith("upstream leg ended: ")) for code, reason, _ in ends_killed] == [(1014, True)] * 2
    assert [(code, reason) for code, reason, _ in ends_frozen] == [(1014, "upstream leg ended: pong_timeout")] * 2
    assert served_meanwhile == {b3.port}
    samples = daemon.metrics()
    ups = {labels["upstream"]: value for labels, value in series(samples, "vigil_upstream_up")
           if labels.get("route") == "pool"}
    assert ups == {"pool-1": 0, "pool-2": 1, "pool-3": 1}, ups
    assert total(samples, "vigil_upstream_tries_total", route="pool", upstream="pool-1", result="failed") >= 1
    assert total(samples, "vigil_upstream_tries_total", route="pool", upstream="pool-2", result="timeout") >= 1
    assert total(samples, "vigil_upstream_tries_total", route="pool", upstream="pool-3", result="ok") >= 8
    for name in ("vigil_upstream_up", "vigil_upstream_tries_total", "vigil_upstream_pairs_active"):
        for labels, _ in series(samples, name):
            assert not any("://" in value for value in labels.values()), (name, labels)
    assert {r["member"] for r in daemon.closes("?route=pool&limit=1000")["closes"]} <= set(member.values())


def test_every_kind_of_member_failure_is_stepped_over(vigild, backend, tmp_path):
    """Members that refuse TCP, close before answering, reset, answer something that is not
    HTTP, fail TLS, or say nothing: each is marked down (`failed`, or `timeout` for the silent
    one) and every client's handshake ends on the one good member."""
    good = backend()
    closing, resetting, garbage = RawListener("close"), RawListener("reset"), RawListener("garbage")
    silent = socket.create_server(("127.0.0.1", 0))  # never accepts: the kernel completes TCP, nobody answers
    try:
        bad = {
            "refusing": f"ws://127.0.0.1:{dead_port()}",
            "closing": closing.url(),
            "resetting": resetting.url(),
            "garbage": garbage.url(),
            "not-tls": f"wss://127.0.0.1:{good.port}",
            "silent": f"ws://127.0.0.1:{silent.getsockname()[1]}",
        }
        members = "".join(f"      - url: {url}\n        name: {name}\n" for name, url in bad.items())
        config = write_config(tmp_path, "routes:\n  - name: pool\n    path: /\n    upstream_try_timeout: 300ms\n"
                              f"    upstream:\n{members}      - url: {good.url()}\n        name: good\n")
        daemon = vigild("--config", str(config))

        def all_down():
            samples = daemon.metrics()
            return all(total(samples, "vigil_upstream_up", route="pool", upstream=name) == 0 for name in bad) and \
                all(total(samples, "vigil_upstream_tries_total", route="pool", upstream=name) >= 1 for name in bad)

        async def scenario():
            served = 0
            deadline = time.monotonic() + 60
            while served < 7 or not all_down():
                assert time.monotonic() < deadline, "not every bad member was tried and marked down"
                ws, port, _ = await open_on(daemon, f"/c{served}?client=c{served}")
                assert port == good.port
                await echoes(ws, "through")
                await ws.close()
                served += 1
            return served

        served = asyncio.run(scenario())
    finally:
        for listener in (closing, resetting, garbage):
            listener.close()
        silent.close()
    samples = daemon.metrics()
    for name in bad:
        results = {labels["result"] for labels, value in series(samples, "vigil_upstream_tries_total")
                   if labels.get("route") == "pool" and labels.get("upstream") == name and value > 0}
        assert results == ({"timeout"} if name == "silent" else {"failed"}), (name, results)
    assert total(samples, "vigil_upstream_tries_total", route="pool", upstream="good", result="ok") == served
    assert total(samples, "vigil_upstream_up", route="pool", upstream="good") == 1
    assert samples.get('vigil_handshakes_rejected_total{reason="upstream_unreachable"}', 0) == 0
    assert samples.get('vigil_handshakes_rejected_total{reason="upstream_timeout"}', 0) == 0


def test_the_last_member_gets_the_rest_of_the_connect_timeout(vigild, tmp_path):
    """Two silent members, upstream_try_timeout 300ms inside upstream_connect_timeout 2s: the
    first is given up after 300 ms, the last gets what is left: 504 at about 2 s, not 0.6 s."""
    first, second = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    try:
        config = write_config(tmp_path, f"""
            upstream_try_timeout: 300ms
            upstream_connect_timeout: 2s
            routes:
              - name: silence
                path: /
                upstream:
                  - ws://127.0.0.1:{first.getsockname()[1]}
                  - ws://127.0.0.1:{second.getsockname()[1]}
        """)
        daemon = vigild("--config", str(config))
        started = time.monotonic()
        status, _, body = raw_status(daemon, "/")
        took = time.monotonic() - started
    finally:
        first.close()
        second.close()
    assert status == 504, (status, body)
    assert 1.8 <= took < 4, took
    samples = daemon.metrics()
    assert total(samples, "vigil_upstream_tries_total", route="silence", result="timeout") == 2
    assert total(samples, "vigil_upstream_tries_total", route="silence") == 2


class SlowUpstream:
    """Answers every WebSocket handshake with a valid 101, but only after `delay` seconds, then
    holds the connection: a healthy backend slower than `upstream_try_timeout`."""

    def __init__(self, delay):
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(sock,), daemon=True).start()

    def answer(self, sock):
        import base64
        import hashlib
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", request).group(1)
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        time.sleep(self.delay)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.held.append(sock)

    def close(self):
        self.listener.close()
        for sock in self.held:
            sock.close()


def test_a_member_known_to_be_down_does_not_cut_a_slow_healthy_one_short(vigild, tmp_path):
    """A healthy member that answers in 1 s, slower than upstream_try_timeout (300 ms), and a
    dead one: once the dead one is down (resting, or tried again after its rest), the healthy
    one is the last member up and has what remains of upstream_connect_timeout — every client gets its 101, whichever member the
    round robin puts first (without that rule the slow one was cut off at 300 ms, rested, and
    the client got the dead one's 502)."""
    slow, dead = SlowUpstream(1.0), dead_port()
    try:
        config = write_config(tmp_path, f"""
            upstream_try_timeout: 300ms
            upstream_connect_timeout: 4s
            routes:
              - name: mixed
                path: /
                upstream:
                  - ws://127.0.0.1:{dead}
                  - ws://127.0.0.1:{slow.port}
        """)
        daemon = vigild("--config", str(config))
        statuses = [raw_status(daemon, f"/try{i}")[0] for i in range(4)]
    finally:
        slow.close()
    assert statuses == [101] * 4, statuses
    samples = daemon.metrics()
    assert total(samples, "vigil_upstream_tries_total", route="mixed", upstream="mixed-2", result="ok") == 4
    assert total(samples, "vigil_upstream_tries_total", route="mixed", upstream="mixed-2", result="timeout") == 0


def test_when_every_member_is_down_they_are_still_tried(vigild, tmp_path):
    """Both members refuse TCP (502, both marked down, backoffs growing); one comes back on
    its port: the next handshake reaches it at once, down or not."""
    ports = [dead_port(), dead_port()]
    config = write_config(tmp_path, f"""
        routes:
          - name: gone
            path: /
            upstream:
              - ws://127.0.0.1:{ports[0]}
              - ws://127.0.0.1:{ports[1]}
    """)
    daemon = vigild("--config", str(config))
    for _ in range(4):
        assert raw_status(daemon, "/")[0] == 502
    until(lambda: upstream_up(daemon, "gone", "gone-1") == 0 and upstream_up(daemon, "gone", "gone-2") == 0, 10,
          "both members down")
    revived = Backend.on_port(ports[1])
    try:
        status, port, _ = landing(daemon, "/again")
        assert (status, port) == (101, ports[1])
        until(lambda: upstream_up(daemon, "gone", "gone-2") == 1, 10, "gone-2 up again")
    finally:
        revived.stop()


def test_round_robin_spreads_connections_evenly(vigild, backend, tmp_path):
    members = [backend(), backend(), backend()]
    config = write_config(tmp_path, "routes:\n  - name: rr\n    path: /\n    upstream:\n"
                          + "".join(f"      - {b.url()}\n" for b in members))
    daemon = vigild("--config", str(config))
    n = 30

    async def scenario():
        held = [await open_on(daemon, f"/rr{i}?client=rr{i}") for i in range(n)]
        counts = collections.Counter(port for _, port, _ in held)
        pairs = await asyncio.to_thread(member_pairs, daemon, "rr")
        samples = await asyncio.to_thread(daemon.metrics)
        for ws, _, _ in held:
            await ws.close()
        return counts, pairs, samples

    counts, pairs, samples = asyncio.run(scenario())
    names = {b.port: f"rr-{i + 1}" for i, b in enumerate(members)}
    print(f"round robin over 3, {n} connections: {dict((names[p], c) for p, c in counts.items())}")
    assert set(counts) == {b.port for b in members}
    assert all(n // 3 - 1 <= counts[b.port] <= n // 3 + 1 for b in members), counts
    assert pairs == {names[port]: count for port, count in counts.items()}, pairs
    for port, count in counts.items():
        assert total(samples, "vigil_upstream_pairs_active", route="rr", upstream=names[port]) == count
    assert routes(daemon)["rr"]["balance"] == "round_robin", "the default"


def test_least_connections_sends_new_pairs_to_the_least_loaded_member(vigild, backend, tmp_path):
    members = [backend(), backend(), backend()]
    config = write_config(tmp_path, "routes:\n  - name: lc\n    path: /\n    balance: least_connections\n"
                          "    upstream:\n" + "".join(f"      - {b.url()}\n" for b in members))
    daemon = vigild("--config", str(config))
    names = {b.port: f"lc-{i + 1}" for i, b in enumerate(members)}

    async def scenario():
        held = {b.port: [] for b in members}

        async def one_more(label):
            loads = {port: len(conns) for port, conns in held.items()}
            ws, port, _ = await open_on(daemon, f"/{label}?client={label}")
            assert loads[port] == min(loads.values()), (label, names[port], loads)
            held[port].append(ws)
            return port

        for i in range(6):
            await one_more(f"first{i}")
        assert {port: len(c) for port, c in held.items()} == {b.port: 2 for b in members}
        # Unbalance the pool: members[0] has none left, members[1] one, members[2] two.
        for ws in held[members[0].port] + held[members[1].port][:1]:
            await ws.close()
        held[members[0].port], held[members[1].port] = [], held[members[1].port][1:]
        expected = {names[members[0].port]: 0, names[members[1].port]: 1, names[members[2].port]: 2}
        await asyncio.to_thread(until, lambda: member_pairs(daemon, "lc") == expected, 10, f"pairs {expected}")
        chosen = [await one_more(f"second{i}") for i in range(3)]
        pairs = await asyncio.to_thread(member_pairs, daemon, "lc")
        for conns in held.values():
            for ws in conns:
                await ws.close()
        return chosen, pairs

    chosen, pairs = asyncio.run(scenario())
    assert chosen[0] == members[0].port, "the empty member first"
    assert members[2].port not in chosen, "the busiest member got none"
    assert pairs == {name: 2 for name in names.values()}, pairs


def test_an_upstream_refusal_is_passed_on_and_not_retried(vigild, backend, tmp_path):
    b1, b2 = backend(), backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: pool
            path: /
            upstream:
              - {b1.url()}
              - {b2.url()}
    """)
    daemon = vigild("--config", str(config))
    for _ in range(4):
        status, headers, body = raw_status(daemon, "/forbidden")
        assert (status, headers.get("www-authenticate"), body) == \
            (403, 'Bearer realm="vigil-test"', b"no token, no socket\n")
    status, headers, body = raw_status(daemon, "/busy")
    assert (status, headers.get("retry-after"), body) == (503, "7", b"come back later\n")
    samples = daemon.metrics()
    tries = collections.Counter()
    for labels, value in series(samples, "vigil_upstream_tries_total"):
        if labels.get("route") == "pool":
            tries[labels["result"]] += value
    assert {k: v for k, v in tries.items() if v} == {"refused": 5}, "one try per refused handshake"
    assert samples['vigil_handshakes_rejected_total{reason="upstream_refused"}'] == 5
    assert upstream_up(daemon, "pool", "pool-1") == 1 and upstream_up(daemon, "pool", "pool-2") == 1, \
        "a refusal is an answer: the member is up"


# --- reload and drain --------------------------------------------------------------------------

def test_a_reload_under_load_adds_and_removes_members_and_routes_and_drops_no_pair(vigild, backend, tmp_path):
    """Clients keep exchanging messages (and new ones keep connecting) while one reload adds a
    member and two routes and the next removes a member and those routes: every pair lives until
    its client closes it (those on the removed member and the removed route too), new
    handshakes follow the new routes and members."""
    alpha, beta, gamma = backend(), backend(), backend()
    name_of = {alpha.port: "alpha", beta.port: "beta", gamma.port: "gamma"}

    def member(b, name):
        return f"      - url: {b.url()}\n        name: {name}\n"

    head = "routes:\n  - name: main\n    path: /\n    upstream:\n"
    v1 = head + member(alpha, "alpha") + member(beta, "beta")
    v2 = head + member(alpha, "alpha") + member(beta, "beta") + member(gamma, "gamma") + \
        f"  - name: extra\n    path: /extra\n    upstream: {gamma.url('/extra-svc')}\n" + \
        "  - name: cmd\n    path: /cmd\n    mode: command\n"
    v3 = head + member(beta, "beta") + member(gamma, "gamma") + "  - name: late\n    path: /late\n    mode: echo\n"
    config = write_config(tmp_path, v1)
    daemon = vigild("--config", str(config))
    counts, errors, opened = {}, [], collections.Counter()

    async def talk(ws, name, stop):
        n = 0
        try:
            while not stop.is_set():
                n += 1
                await ws.send(f"{name}:{n}")
                reply = await asyncio.wait_for(ws.recv(), 15)
                if reply != f"{name}:{n}":
                    errors.append((name, n, reply))
                    return
                counts[name] = n
                await asyncio.sleep(0.02)
        except Exception as error:
            errors.append((name, n, repr(error)))

    async def churn(stop):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                ws, port, _ = await open_on(daemon, f"/churn{n}?client=churn{n}")
                opened["main"] += 1
                await echoes(ws, "x")
                await ws.close()
            except Exception as error:
                errors.append(("churn", n, repr(error)))
            await asyncio.sleep(0.05)

    async def new_pairs(count, label):
        ports = []
        for i in range(count):
            ws, port, _ = await open_on(daemon, f"/{label}{i}?client={label}{i}")
            opened["main"] += 1
            ports.append(port)
            await ws.close()
        return ports

    async def talkers(count, label, stop, tasks, where):
        for i in range(count):
            ws, port, _ = await open_on(daemon, f"/{label}{i}?client={label}{i}")
            opened["main"] += 1
            where[f"{label}{i}"] = (ws, port)
            tasks.append(asyncio.create_task(talk(ws, f"{label}{i}", stop)))

    async def talking_on(names, since, timeout=20):
        await until_async(lambda: all(counts.get(n, 0) >= since.get(n, 0) + 3 for n in names), timeout,
                          f"{names} to keep talking")

    async def command(ws, request_id, text):
        await ws.send(json.dumps({"requestID": request_id, "command": text}))
        return json.loads(await asyncio.wait_for(ws.recv(), 15))

    async def scenario():
        stop = asyncio.Event()
        tasks, where = [], {}
        # Before: /extra is the catch-all's, proxied with its own path.
        ws, port, seen = await open_on(daemon, "/extra")
        opened["main"] += 1
        assert seen == probed("/extra") and port in (alpha.port, beta.port)
        await ws.close()
        await talkers(6, "t", stop, tasks, where)
        tasks.append(asyncio.create_task(churn(stop)))
        await talking_on(list(where), {})

        await asyncio.to_thread(reload, daemon, config, v2)
        since = dict(counts)
        after_v2 = await new_pairs(6, "v2-")
        ws, port, seen = await open_on(daemon, "/extra/feed?client=x0")
        assert (port, seen) == (gamma.port, probed("/extra-svc/feed?client=x0")), "the new route, rewritten"
        where["x0"] = (ws, port)
        tasks.append(asyncio.create_task(talk(ws, "x0", stop)))
        commands = await ws_connect(daemon, "/cmd?client=k0")
        assert await command(commands, 7, "hi") == {"requestID": 7, "success": True, "result": "command 'hi' processed"}
        await talkers(3, "u", stop, tasks, where)
        await talking_on([n for n in where if n.startswith("t")], since)

        await asyncio.to_thread(reload, daemon, config, v3)
        since = dict(counts)
        after_v3 = await new_pairs(6, "v3-")
        ws, port, seen = await open_on(daemon, "/extra")  # the catch-all's again
        opened["main"] += 1
        assert seen == probed("/extra") and port in (beta.port, gamma.port)
        await ws.close()
        async with ws_connect(daemon, probed("/late")) as echo:
            await echo.send("first")
            assert await asyncio.wait_for(echo.recv(), 15) == "first", "echo mode: no report from a backend first"
        on_alpha = [n for n, (_, p) in where.items() if p == alpha.port]
        assert on_alpha, "some talkers are on the member being removed"
        await talking_on(list(where), since)
        answer = await command(commands, 8, "again")
        assert answer == {"requestID": 8, "success": True, "result": "command 'again' processed"}, \
            "a connection on a removed route goes on"
        live = (await asyncio.to_thread(daemon.get_json, "/connections"))["connections"]
        listed = await asyncio.to_thread(routes, daemon)

        stop.set()
        await asyncio.gather(*tasks)
        for ws, _ in where.values():
            await ws.close(1000, "done")
        await commands.close(1000, "done")
        return after_v2, after_v3, on_alpha, live, listed

    after_v2, after_v3, on_alpha, live, listed = asyncio.run(scenario())
    assert errors == [], errors[:5]
    assert gamma.port in after_v2, f"the added member takes new pairs: {[name_of[p] for p in after_v2]}"
    assert alpha.port not in after_v3, f"the removed member takes none: {[name_of[p] for p in after_v3]}"
    members = {(e["client"], e["leg"]): (e["route"], e.get("member")) for e in live}
    for name in on_alpha:
        assert members[(name, "client")] == members[(name, "upstream")] == ("main", "alpha")
    assert members[("x0", "client")] == ("extra", "extra-1") and members[("k0", "client")][0] == "cmd"
    assert [m["name"] for m in listed["main"]["members"]] == ["beta", "gamma"]
    assert set(listed) == {"main", "late"}
    for route, count in (("main", opened["main"]), ("extra", 1), ("cmd", 1)):
        records = daemon.wait_closes(count, query=f"?route={route}&leg=client", timeout=30)
        assert len(records) == count, (route, len(records), count)
        dropped = [r for r in records if (r["kind"], r["cause"]) != ("normal", "peer_close")]
        assert dropped == [], (route, dropped[:3])


def test_a_routes_own_upstream_ca_file(vigild, backend, tmp_path):
    """upstream_ca_file on one route: its wss:// member is trusted; the same member on a route
    without it fails TLS (a member failure: 502 once every member failed, counted `failed`)."""
    from test_proxy import make_certificates
    ca, cert, key = make_certificates(tmp_path)
    secure = backend(tls=[str(cert), str(key)])
    config = write_config(tmp_path, f"""
        routes:
          - name: trusting
            path: /secure
            upstream: wss://localhost:{secure.port}/s
            upstream_ca_file: {ca}
          - name: untrusting
            path: /plain
            upstream: wss://localhost:{secure.port}/s
    """)
    daemon = vigild("--config", str(config))
    status, port, seen = landing(daemon, "/secure/room")
    assert (status, port, seen) == (101, secure.port, probed("/s/room"))
    status, _, body = raw_status(daemon, "/plain/room")
    assert status == 502, (status, body)
    samples = daemon.metrics()
    assert total(samples, "vigil_upstream_tries_total", route="trusting", upstream="trusting-1", result="ok") == 1
    assert total(samples, "vigil_upstream_tries_total", route="untrusting", upstream="untrusting-1", result="failed") == 1
    assert upstream_up(daemon, "untrusting", "untrusting-1") == 0 and upstream_up(daemon, "trusting", "trusting-1") == 1


def test_drain_true_closes_the_members_clients_with_1001_over_the_drain_window(vigild, backend, tmp_path):
    keep, leaving = backend(), backend()

    def config_text(drain):
        return f"""
            drain_window: 2s
            routes:
              - name: pool
                path: /
                upstream:
                  - url: {keep.url()}
                    name: keep
                  - url: {leaving.url()}
                    name: leaving
                    drain: {'true' if drain else 'false'}
        """

    config = write_config(tmp_path, config_text(False))
    daemon = vigild("--config", str(config))

    async def scenario():
        held = [await open_on(daemon, f"/h{i}?client=h{i}") for i in range(20)]
        on_leaving = [ws for ws, port, _ in held if port == leaving.port]
        on_keep = [ws for ws, port, _ in held if port == keep.port]
        assert len(on_leaving) == len(on_keep) == 10
        watchers = [asyncio.create_task(closed_with(ws, 30)) for ws in on_leaving]
        await asyncio.to_thread(reload, daemon, config, config_text(True))
        ends = await asyncio.gather(*watchers)
        later = []
        for i in range(6):
            ws, port, _ = await open_on(daemon, f"/n{i}?client=n{i}")
            later.append(port)
            await ws.close()
        for ws in on_keep:
            await echoes(ws, "kept")
        listed = await asyncio.to_thread(until, lambda: (r := routes(daemon)) and
                                         {m["name"]: m["pairs"] for m in r["pool"]["members"]} ==
                                         {"keep": 10, "leaving": 0} and r, 10, "10 pairs on keep, none on leaving")
        for ws in on_keep:
            await ws.close()
        return ends, later, listed

    ends, later, listed = asyncio.run(scenario())
    assert all(code == 1001 and "leaving" in reason for code, reason, _ in ends), ends
    assert later == [keep.port] * 6, "no new pairs on a draining member"
    members = {m["name"]: m for m in listed["pool"]["members"]}
    assert (members["leaving"]["drain"], members["keep"]["drain"]) == (True, False)
    assert members["keep"]["pairs"] == 10
    records = daemon.wait_closes(10, query="?route=pool&leg=client&kind=going_away")
    drained = [r for r in records if r["code"] == 1001]
    assert len(drained) == 10 and {r["member"] for r in drained} == {"leaving"}
    stamps = sorted(rfc3339_ns(r["closed_at"]) / 1e9 for r in drained)
    spread = stamps[-1] - stamps[0]
    print(f"drain_window 2s: 10 clients of the drained member closed over {spread:.2f} s")
    assert 0.6 <= spread <= 4, spread


# --- per-route settings ------------------------------------------------------------------------

def test_route_overrides_apply_to_their_route_only(vigild, backend, tmp_path):
    """ping_interval and the app heartbeat, allowed_origins/require_origin and
    upstream_failure_code set on one route; the others keep the top-level settings."""
    failing, plain = backend(), backend()
    config = write_config(tmp_path, f"""
        ping_interval: 30s
        routes:
          - name: fast
            path: /fast
            mode: echo
            ping_interval: 300ms
            pong_timeout: 5s
            app_ping_interval: 300ms
            app_pong_timeout: 5s
            app_ping_message: '{{"t":"hb"}}'
            app_pong_message: '{{"t":"ack"}}'
          - name: slow
            path: /slow
            mode: echo
          - name: strict
            path: /strict
            mode: echo
            allowed_origins: [https://chat.example]
            require_origin: true
          - name: coded
            path: /coded
            upstream: {failing.url()}
            upstream_failure_code: 1011
          - name: default-code
            path: /plain
            upstream: {plain.url()}
    """)
    daemon = vigild("--config", str(config))

    async def heartbeats():
        async with ws_connect(daemon, "/fast?client=fast") as fast, ws_connect(daemon, "/slow?client=slow") as slow:
            for _ in range(2):
                assert await asyncio.wait_for(fast.recv(), 10) == '{"t":"hb"}'
                await fast.send('{"t":"ack"}')
            await echoes(slow, "anyone?")

            def pinged():
                rows = {c["client"]: c for c in daemon.get_json("/connections")["connections"]}
                return rows if rows["fast"]["pings_sent"] >= 3 else None

            rows = await asyncio.to_thread(until, pinged, 15, "three pings on /fast")
            return rows

    rows = asyncio.run(heartbeats())
    assert rows["slow"]["pings_sent"] == 0 and rows["slow"]["app_pings_sent"] == 0, rows["slow"]
    assert rows["fast"]["app_pings_sent"] >= 2 and rows["fast"]["app_pongs_received"] >= 2, rows["fast"]
    assert (rows["fast"]["route"], rows["slow"]["route"]) == ("fast", "slow")

    assert raw_status(daemon, "/strict")[0] == 403, "require_origin on /strict"
    assert raw_status(daemon, "/strict", extra="Origin: https://chat.example\r\n")[0] == 101
    assert raw_status(daemon, "/strict", extra="Origin: https://evil.example\r\n")[0] == 403
    assert raw_status(daemon, "/slow")[0] == 101, "no Origin needed elsewhere"
    assert raw_status(daemon, "/slow", extra="Origin: https://chat.example\r\n")[0] == 403, "same-origin elsewhere"

    async def failures():
        coded, _, _ = await open_on(daemon, "/coded")
        defaulted, _, _ = await open_on(daemon, "/plain")
        failing.proc.kill()
        plain.proc.kill()
        return (await closed_with(coded, 10))[:2], (await closed_with(defaulted, 10))[:2]

    coded, defaulted = asyncio.run(failures())
    assert coded[0] == 1011 and coded[1].startswith("upstream leg ended: "), coded
    assert defaulted[0] == 1014 and defaulted[1].startswith("upstream leg ended: "), defaulted


# --- the status API and vigilctl ---------------------------------------------------------------

def test_routes_on_the_status_api_and_vigilctl(vigild, backend, tmp_path):
    b1, b2 = backend(), backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: chat
            path: /chat/
            host: [chat.example.com, "*.chat.example"]
            balance: least_connections
            upstream:
              - {b1.url()}
              - url: {b2.url('/x')}
                name: second
                drain: true
          - path: /echo
            mode: echo
          - name: cmd
            path: /
            mode: command
    """)
    daemon = vigild("--config", str(config))
    # /chat names its hosts: the client says it is chat.example.com.
    client = RawClient(daemon, probed("/chat/room"), host="chat.example.com")
    try:
        assert client.status == 101
        assert backend_port(json.loads(client.text())) == b1.port, "the draining member gets no pairs"
        listed = daemon.get_json("/routes")["routes"]
        table = ctl("routes", "--status", daemon.status_url)
    finally:
        client.close()
    assert [r["name"] for r in listed] == ["chat", "/echo", "cmd"], "the configuration's order; a name defaults to the path"
    chat, echo, cmd = listed
    for route in listed:
        assert {"name", "path", "host", "mode", "balance", "members"} <= set(route), route
    assert (chat["path"], chat["host"], chat["mode"], chat["balance"]) == \
        ("/chat", ["chat.example.com", "*.chat.example"], "proxy", "least_connections")
    assert [{k: m[k] for k in ("name", "url", "up", "pairs", "drain")} for m in chat["members"]] == [
        {"name": "chat-1", "url": b1.url(), "up": True, "pairs": 1, "drain": False},
        {"name": "second", "url": b2.url("/x"), "up": chat["members"][1]["up"], "pairs": 0, "drain": True}]
    assert isinstance(chat["members"][1]["up"], bool)
    assert (echo["path"], echo["host"], echo["mode"], echo["members"]) == ("/echo", None, "echo", [])
    assert (cmd["path"], cmd["host"], cmd["mode"], cmd["members"]) == ("/", None, "command", [])

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == lines[0].upper() and "PATH" in lines[0].split(), "a header line first: " + lines[0]
    text = table.stdout
    for word in ("chat", "/chat", "chat-1", "second", "/echo", "cmd"):
        assert re.search(rf"(^|\s){re.escape(word)}(\s|$)", text, re.M), (word, text)


def test_records_carry_route_and_member_and_filter_by_route(vigild, backend, tmp_path):
    b = backend()
    config = write_config(tmp_path, f"""
        routes:
          - name: chat
            path: /chat
            upstream: {b.url()}
          - name: echoes
            path: /echo
            mode: echo
          - path: /cmd
            mode: command
    """)
    daemon = vigild("--config", str(config))

    async def scenario():
        chat, _, _ = await open_on(daemon, "/chat?client=c1")
        echo = await ws_connect(daemon, "/echo?client=e1")
        command = await ws_connect(daemon, "/cmd?client=k1")
        await echoes(echo, "e")
        await command.send('{"requestID": 1, "command": "x"}')
        await asyncio.wait_for(command.recv(), 15)
        results = {
            "all": await asyncio.to_thread(daemon.get_json, "/connections"),
            "chat": await asyncio.to_thread(daemon.get_json, "/connections?route=chat"),
            "echoes": await asyncio.to_thread(daemon.get_json, "/connections?route=echoes"),
            "cmd": await asyncio.to_thread(daemon.get_json, "/connections?route=%2Fcmd"),
            "ctl": await asyncio.to_thread(ctl, "connections", "--status", daemon.status_url, "--route", "chat",
                                           "-o", "json"),
        }
        for ws in (chat, echo, command):
            await ws.close()
        return results

    r = asyncio.run(scenario())
    rows = {(c["client"], c["leg"]): c for c in r["all"]["connections"]}
    assert set(rows) == {("c1", "client"), ("c1", "upstream"), ("e1", "client"), ("k1", "client")}
    assert {(k, v["route"], v.get("member")) for k, v in rows.items()} == {
        (("c1", "client"), "chat", "chat-1"), (("c1", "upstream"), "chat", "chat-1"),
        (("e1", "client"), "echoes", None), (("k1", "client"), "/cmd", None)}
    assert rows[("c1", "client")]["upstream"] == rows[("c1", "upstream")]["upstream"] == b.url()
    assert sorted((c["client"], c["leg"]) for c in r["chat"]["connections"]) == [("c1", "client"), ("c1", "upstream")]
    assert [c["client"] for c in r["echoes"]["connections"]] == ["e1"]
    assert [c["client"] for c in r["cmd"]["connections"]] == ["k1"]
    assert r["ctl"].returncode == 0, r["ctl"].stderr
    assert sorted(c["id"] for c in json.loads(r["ctl"].stdout)["connections"]) == \
        sorted(c["id"] for c in r["chat"]["connections"])

    daemon.wait_closes(4)
    chat_closes = daemon.closes("?route=chat")
    assert chat_closes["total"] == 2
    assert sorted((c["leg"], c["route"], c["member"]) for c in chat_closes["closes"]) == \
        [("client", "chat", "chat-1"), ("upstream", "chat", "chat-1")]
    assert [c["client"] for c in daemon.closes("?route=echoes")["closes"]] == ["e1"]
    assert daemon.closes("?route=nonesuch")["total"] == 0
    listed = ctl("closes", "--status", daemon.status_url, "--route", "chat", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(c["seq"] for c in json.loads(listed.stdout)["closes"]) == sorted(c["seq"] for c in chat_closes["closes"])
    table = ctl("closes", "--status", daemon.status_url, "--route", "echoes")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 2, table.stdout


# --- start-up errors ---------------------------------------------------------------------------

ROUTES = "routes:\n  - name: chat\n    path: /chat\n    upstream: ws://127.0.0.1:9\n"
STARTUP_ERRORS = [
    ("top-level upstream", [], "upstream: ws://127.0.0.1:9/\n" + ROUTES, ["upstream", "routes"]),
    ("top-level mode", [], "mode: proxy\n" + ROUTES, ["mode", "routes"]),
    ("top-level path", [], "path: /socket\n" + ROUTES, ["path", "routes"]),
    ("top-level upstream_path", [], "upstream_path: fixed\n" + ROUTES, ["upstream_path", "routes"]),
    ("--upstream flag", ["--upstream", "ws://127.0.0.1:9/"], ROUTES, ["upstream", "routes"]),
    ("duplicate names", [], ROUTES + "  - name: chat\n    path: /other\n    mode: echo\n", ["chat", "name"]),
    ("path without a slash", [], "routes:\n  - name: x\n    path: no-leading-slash\n    mode: echo\n",
     ["no-leading-slash", "path"]),
    ("no path", [], "routes:\n  - name: pathless\n    mode: echo\n", ["path"]),
    ("no mode, no upstream", [], "routes:\n  - name: modeless\n    path: /m\n", ["mode"]),
    ("bad balance", [], ROUTES + "    balance: random_choice\n", ["random_choice", "balance"]),
    ("bad upstream scheme", [], "routes:\n  - name: web\n    path: /\n    upstream: http://127.0.0.1:9/\n",
     ["http://127.0.0.1:9/"]),
    ("unknown route key", [], ROUTES + "    upstreams: ws://127.0.0.1:9\n", ["upstreams"]),
]


@pytest.mark.parametrize("args,text,words", [e[1:] for e in STARTUP_ERRORS], ids=[e[0] for e in STARTUP_ERRORS])
def test_startup_errors_name_the_offending_key_or_value(tmp_path, args, text, words):
    config = write_config(tmp_path, text)
    result = run_vigild("--config", str(config), "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", *args)
    assert result.returncode != 0, result.stderr
    assert "vigild ready" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def test_upstream_try_timeout_defaults_to_1s_and_is_reloadable():
    lines = {line.split()[0]: line for line in run_vigild("--print-config").stdout.splitlines()}
    assert lines["upstream_try_timeout"].split()[1] == "1s" and lines["upstream_try_timeout"].endswith("# default")
    assert lines["upstream_connect_timeout"].split()[1] == "5s"
    help_text = " ".join(run_vigild("--help").stdout.split())
    assert "env VIGIL_UPSTREAM_TRY_TIMEOUT; per route; reloadable)" in help_text


# --- the deployment recipe ---------------------------------------------------------------------

def test_the_routes_recipe_runs_as_shipped(vigild, backend, tmp_path):
    """deploy/vigild-routes.yaml, recipe (e) of docs/deploy.md, its placeholders filled in with
    three real backends: /chat to a pool of two (least connections), /feed to one service whose
    path is /stream; a chat instance that dies is stepped over."""
    chat_a, chat_b, feed = backend(), backend(), backend()
    text = open(os.path.join(DEPLOY, "vigild-routes.yaml")).read()
    for key, b in (("CHAT_A", chat_a), ("CHAT_B", chat_b), ("FEED", feed)):
        text = text.replace(f"@{key}@", f"127.0.0.1:{b.port}")
    assert not re.findall(r"@[A-Z_]+@", text), text
    config = tmp_path / "vigild-routes.yaml"
    config.write_text(text)
    daemon = vigild("--config", str(config))

    async def scenario():
        chats = [await open_on(daemon, f"/chat/lobby?client=chat{i}") for i in range(4)]
        feed_ws, feed_port, feed_seen = await open_on(daemon, "/feed/prices?symbol=VGL")
        await echoes(feed_ws, "tick")
        on = collections.Counter(port for _, port, _ in chats)
        watchers = [asyncio.create_task(closed_with(ws, 15)) for ws, port, _ in chats if port == chat_a.port]
        chat_a.proc.kill()
        ends = await asyncio.gather(*watchers)
        after = []
        for i in range(4):
            ws, port, _ = await open_on(daemon, f"/chat/lobby?client=after{i}")
            after.append(port)
            await ws.close()
        for ws, port, _ in chats:
            if port == chat_b.port:
                await echoes(ws, "still chatting")
                await ws.close()
        await feed_ws.close()
        return on, feed_port, feed_seen, ends, after

    on, feed_port, feed_seen, ends, after = asyncio.run(scenario())
    assert on == {chat_a.port: 2, chat_b.port: 2}, "least connections over the two chat instances"
    assert (feed_port, feed_seen) == (feed.port, probed("/stream/prices?symbol=VGL"))
    assert [code for code, _, _ in ends] == [1014, 1014]
    assert after == [chat_b.port] * 4
    listed = routes(daemon)
    assert set(listed) == {"chat", "feed"}
    assert {m["name"]: m["up"] for m in listed["chat"]["members"]} == {"chat-a": False, "chat-b": True}
    assert raw_status(daemon, "/")[0] == 404
