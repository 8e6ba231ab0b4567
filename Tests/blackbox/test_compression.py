"""permessage-deflate (RFC 7692) against independent peers: Python websockets, Go's gorilla
with compression on, raw frames deflated by Python's zlib, and headless Chromium. vigild answers
offers on its own connections and passes them through as a proxy, so the bytes on a client's
link through vigild are the bytes it gets directly."""

import asyncio
import json
import os
import random
import socket
import subprocess
import urllib.parse
import zlib

import pytest
import websockets
from websockets.asyncio.server import serve

from conftest import ROOT, rss_kib
from wsraw import RawPeer, handshake_request, read_http_response

GORILLA_CLIENT = os.path.join(ROOT, ".build-go", "gorilla-deflate-client")
VIGILD_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def quotes(count, seed=7):
    """JSON quotes as a market feed sends them: compressible, each one different."""
    rng = random.Random(seed)
    symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "STARK", "WAYNE", "WONKA", "TYRELL"]
    return [json.dumps({"type": "quote", "symbol": rng.choice(symbols), "bid": round(rng.uniform(10, 500), 2),
                        "ask": round(rng.uniform(10, 500), 2), "volume": rng.randrange(1, 100_000), "sequence": n,
                        "exchange": "XNAS", "currency": "USD", "status": "open"}) for n in range(count)]


class CountingRelay:
    """A TCP relay in front of a WebSocket server that counts the bytes going to the client:
    what the client's link carries."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.to_client = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(reader, writer, count):
            try:
                while data := await reader.read(65536):
                    if count:
                        self.to_client += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, server_writer, False), pipe(server_reader, client_writer, True))

    def close(self):
        self.server.close()


async def streamed_bytes(port, path, messages):
    """Connects through a counting relay to `port`, receives `messages` quotes, and returns the
    bytes the link carried and the extension the client was answered with."""
    relay = CountingRelay(port)
    await relay.start()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{relay.port}{path}", max_size=None) as ws:
            received = [await ws.recv() for _ in range(messages)]
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert received == quotes(messages)
        await asyncio.sleep(0.1)
        return relay.to_client, extensions
    finally:
        relay.close()


def test_through_the_proxy_the_clients_link_carries_what_it_carries_directly(vigild):
    """A Python websockets backend streaming JSON quotes to a client that offers deflate: the
    client's bytes through vigild are within 10 % of direct (3.85 times direct before vigild
    passed the extension through), with the extension agreed on both sides and relayed as is."""
    messages = 300
    seen = {}

    async def feed(ws):
        seen["extensions"] = ws.request.headers.get("Sec-WebSocket-Extensions")
        for quote in quotes(messages):
            await ws.send(quote)
        await ws.wait_closed()

    async def scenario():
        async with serve(feed, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            direct, direct_extensions = await streamed_bytes(port, "/", messages)
            daemon = vigild("--mode", "proxy", "--upstream", f"ws://127.0.0.1:{port}")
            through, extensions = await streamed_bytes(daemon.port, "/", messages)
            return daemon, direct, direct_extensions, through, extensions

    daemon, direct, direct_extensions, through, extensions = asyncio.run(scenario())
    print(f"{messages} quotes: {direct} bytes directly, {through} through vigild ({through / direct:.2f}x)")
    assert direct_extensions and direct_extensions.startswith("permessage-deflate")
    assert extensions == direct_extensions, "the client is answered with what the backend agreed"
    assert seen["extensions"] == "permessage-deflate; client_max_window_bits", "the client's offer went upstream"
    assert through <= direct * 1.10, f"{through} bytes through vigild against {direct} directly"
    legs = {record["leg"]: record for record in daemon.wait_closes(2)}
    assert legs["client"]["compression"] == legs["upstream"]["compression"] == extensions
    assert legs["upstream"]["compressed_in"] == legs["client"]["compressed_out"] == messages, legs


def test_echo_mode_answers_without_context_takeover_and_compresses_itself(vigild):
    """vigild as an endpoint: Python websockets (which offers client_max_window_bits) gets the
    no-context-takeover answer, and messages round trip compressed both ways; a short message
    goes as it is."""
    daemon = vigild()

    async def scenario():
        async with websockets.connect(daemon.ws("?client=deflate"), max_size=None) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"] == VIGILD_ANSWER
            for message in ["short", "a compressible line of text " * 40, "é" * 500, bytes(range(256)) * 20]:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close(1000, "done")

    asyncio.run(scenario())
    record = daemon.wait_closes(1)[0]
    assert record["compression"] == VIGILD_ANSWER
    assert (record["compressed_in"], record["compressed_out"], record["messages_out"]) == (4, 3, 4), record
    line = daemon.wait_for_log(lambda entry: entry.get("ws_client") == "deflate" and "ws_close_kind" in entry)
    assert (line["ws_compression"], line["ws_compressed_in"], line["ws_compressed_out"]) == (VIGILD_ANSWER, "4", "3"), line


def test_gorilla_with_compression_accepts_vigilds_answer(vigild):
    """Go's gorilla/websocket client with EnableCompression offers no context takeover both ways
    and compresses what it sends: against echo mode, 20 round trips of compressed messages."""
    daemon = vigild()
    run = subprocess.run([GORILLA_CLIENT, "-url", daemon.ws("?client=gorilla"), "-messages", "20"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result == {"extensions": VIGILD_ANSWER, "echoed": 20}, result
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["compressed_in"], record["compressed_out"]) == ("normal", 20, 20), record


def deflated(data):
    """Raw deflate with a sync flush, the 00 00 FF FF tail removed (RFC 7692 §7.2.1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def zero_bomb(limit):
    """Raw deflate of zeros, at most `limit` bytes of it: about 1,000 times as many once inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk, out, inflated = bytes(1 << 20), b"", 0
    while len(out) < limit - 8192:
        out += compressor.compress(chunk)
        inflated += len(chunk)
    out += compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
    print(f"bomb: {len(out)} bytes that inflate to at least {inflated >> 20} MiB")
    return out[:limit]


def deflate_handshake(port, path):
    peer = RawPeer.__new__(RawPeer)
    peer.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    peer.sock.sendall(handshake_request(path, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    status, headers, rest = read_http_response(peer.sock)
    assert status == 101 and headers["sec-websocket-extensions"] == VIGILD_ANSWER, (status, headers)
    peer.buffer = rest
    return peer


def test_a_decompression_bomb_ends_with_1009_at_bounded_memory(vigild):
    """A message of 1 MiB compressed (max_message, in max_frame fragments) that would inflate to
    about 1 GiB: vigild inflates at most max_message of it, answers 1009, and its RSS grows by
    a few MiB, not by the gigabyte."""
    daemon = vigild()
    before = rss_kib(daemon.proc.pid)
    bomb = zero_bomb(limit=(1 << 20) - 64)
    peer = deflate_handshake(daemon.port, "/ws?client=bomb")
    fragments = [bomb[i:i + 65536] for i in range(0, len(bomb), 65536)]
    for index, fragment in enumerate(fragments):
        opcode = 0x2 if index == 0 else 0x0
        peer.send_frame(opcode, fragment, fin=index == len(fragments) - 1, rsv=4 if index == 0 else 0)
    code, reason = peer.read_until_close()
    grown = rss_kib(daemon.proc.pid) - before
    print(f"bomb: {len(bomb)} bytes compressed; closed {code} ({reason}); RSS grew {grown} KiB")
    assert code == 1009 and "once inflated" in reason, (code, reason)
    assert grown < 32 * 1024, f"RSS grew {grown} KiB"
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["cause"], record["code"]) == ("error", "message_too_big", 1009)


@pytest.mark.parametrize("rsv, opcode, why", [
    (4, 0x9, "a ping"), (2, 0x1, "RSV2"), (1, 0x1, "RSV3"),
])
def test_rsv_bits_where_the_extension_does_not_allow_them_are_1002(vigild, rsv, opcode, why):
    """RSV1 only on a data message's first frame of a connection that agreed deflate."""
    daemon = vigild()
    peer = deflate_handshake(daemon.port, f"/ws?client={why.replace(' ', '_')}")
    peer.send_frame(opcode, b"x", rsv=rsv)
    code, _ = peer.read_until_close()
    assert code == 1002, why


def test_rsv1_on_a_continuation_is_1002(vigild):
    daemon = vigild()
    peer = deflate_handshake(daemon.port, "/ws?client=continuation")
    peer.send_frame(0x1, deflated(b"hello "), fin=False, rsv=4)
    peer.send_frame(0x0, b"world", fin=True, rsv=4)
    code, reason = peer.read_until_close()
    assert code == 1002 and "RSV1" in reason, (code, reason)


def test_compressed_text_that_is_not_utf8_is_1007(vigild):
    daemon = vigild()
    peer = deflate_handshake(daemon.port, "/ws?client=utf8")
    peer.send_frame(0x1, deflated(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), rsv=4)
    code, _ = peer.read_until_close()
    assert code == 1007


def test_compression_off_answers_no_extension_and_forwards_no_offer(vigild):
    daemon = vigild("--compression", "off")

    async def scenario():
        async with websockets.connect(daemon.ws()) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000

    asyncio.run(scenario())
    assert daemon.wait_closes(1)[0]["compression"] is None


PAGE = b"""<!doctype html>
<title>deflate probe</title>
<script>
window.probe = new Promise(resolve => {
  const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
  const text = "a compressible line from the browser ".repeat(50);
  const seen = {extensions: null, echoed: false, closeCode: null};
  ws.onopen = () => { seen.extensions = ws.extensions; ws.send(text); };
  ws.onmessage = event => { seen.echoed = event.data === text; ws.close(1000, "done"); };
  ws.onclose = event => { seen.closeCode = event.code; resolve(seen); };
  setTimeout(() => resolve(seen), 5000);
});
</script>
"""


@pytest.fixture(scope="module")
def page_site():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_chromium_negotiates_deflate_with_echo_mode_and_through_the_proxy(vigild, page, page_site):
    """A real browser: headless Chromium's WebSocket reports permessage-deflate in ws.extensions
    and exchanges a message, against echo mode and through the proxy to a compressing backend."""
    backend = subprocess.Popen([os.sys.executable, os.path.join(os.path.dirname(__file__), "backend.py")],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "BACKEND_PLAIN_ECHO": "1", "BACKEND_COMPRESSION": "1"})
    try:
        backend_port = int(backend.stdout.readline().split()[1])
        echo = vigild("--allowed-origins", "*")
        proxy = vigild("--mode", "proxy", "--upstream", f"ws://127.0.0.1:{backend_port}", "--allowed-origins", "*")
        for daemon, expected in [(echo, VIGILD_ANSWER), (proxy, None)]:
            target = urllib.parse.quote(daemon.ws("?client=chromium"), safe="")
            page.navigate(f"{page_site}/deflate.html?ws={target}")
            seen = page.evaluate("window.probe")
            assert seen["echoed"] and seen["closeCode"] == 1000, seen
            assert seen["extensions"].startswith("permessage-deflate"), seen
            if expected:
                assert seen["extensions"] == expected, seen
            record = next(r for r in daemon.wait_closes(2 if daemon is proxy else 1) if r["leg"] == "client")
            assert record["compressed_in"] == 1 and record["compression"] == seen["extensions"], record
    finally:
        backend.kill()
        backend.wait()
