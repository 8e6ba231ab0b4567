#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets, one per path of the close table, into
Fuzz/seeds/TARGET/. `make fuzz` and `make fuzz-campaign` start from them together with the
committed corpus (Fuzz/corpus/, what campaigns found); rerun this after changing an input format.

Input formats (the targets' doc comments say the same):
- framing: byte 0 = role (bit 0: 1 = client, facing a server's unmasked frames), permessage-deflate
  agreed (bit 1; bit 2: the remote end keeps its context; both windows 8 bits) and where the
  stream is cut (bits 3-7); then the remote end's bytes.
- connection: byte 0 = where the stream is cut; then what a client sends to vigild's listener.
- proxy-header: byte 0 = the versions accepted (bit 0: v1, bit 1: v2; neither: both) and where
  the stream is cut into two reads (bits 2-7); then a connection's first bytes (a PROXY header
  and what follows it), also read as forwarded header values.
- relay: a script of steps; a step's low two bits: 0/1 = the next two bytes give a length and that
  many bytes arrive on the client (0) / upstream (1) leg; 2 = time passes (upper six bits, ms);
  3 = a leg's input ends (bit 2: upstream; bit 3: reset instead of FIN; bit 4: mid-frame).
  Both legs have permessage-deflate agreed (passed through); the client leg runs the app
  heartbeat ("ping" every 10 ms, "pong" within 40 ms) and pings every 20 ms, the upstream leg
  every 10 ms (pong timeout 10 ms both).
"""
import os
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
KEY = b"\x01\x02\x03\x04"

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, length=None):
    """One frame as an endpoint would send it; `length` overrides the header's length field."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))


def close(code=None, reason=b"", masked=True):
    payload = b"" if code is None else struct.pack(">H", code) + reason
    return frame(CLOSE, payload, masked=masked)


def deflated(*messages, window=9, keep_context=False):
    """Each message as permessage-deflate sends it (RFC 7692 §7.2.1): raw deflate, sync-flushed,
    the final 00 00 ff ff taken off; one compressor for all when the sender keeps its context.
    Window 9 is what a sender declaring 8 bits deflates with (zlib's smallest)."""
    out, compressor = [], None
    for message in messages:
        if compressor is None or not keep_context:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -window)
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


QUOTE = b'{"symbol":"VGL","bid":101.25,"ask":101.27,"venue":"XNYS","ts":"2026-12-07T17:00:00Z"}'


def compressed_streams(masked):
    """The remote end's streams once permessage-deflate is agreed: one per Autobahn 12/13 shape
    (sizes, fragmentation, binary, context kept or not) and per way a compressed message fails."""
    m = masked
    one, = deflated(QUOTE * 4)
    first, second = deflated(QUOTE, QUOTE, keep_context=True)
    bomb, = deflated(b"\x00" * 40000)
    binary, = deflated(bytes(range(256)) * 8)
    return {
        "deflate-text": frame(TEXT, one, masked=m, rsv=4) + close(1000, b"", m),
        "deflate-binary": frame(BINARY, binary, masked=m, rsv=4),
        "deflate-empty": frame(TEXT, b"\x00", masked=m, rsv=4),
        "deflate-fragmented": frame(TEXT, one[:10], fin=False, masked=m, rsv=4) + frame(PING, b"", masked=m)
        + frame(CONT, one[10:20], fin=False, masked=m) + frame(CONT, one[20:], masked=m),
        "deflate-context-kept": frame(TEXT, first, masked=m, rsv=4) + frame(TEXT, second, masked=m, rsv=4),
        "deflate-mixed": frame(TEXT, b"plain", masked=m) + frame(TEXT, one, masked=m, rsv=4),
        "deflate-bomb": frame(BINARY, bomb, masked=m, rsv=4),
        "deflate-garbage": frame(BINARY, b"\xff\xff\xff\xff", masked=m, rsv=4),
        "deflate-bad-utf8": frame(TEXT, deflated(b"\xc3\x28" * 20)[0], masked=m, rsv=4),
        "deflate-rsv1-continuation": frame(TEXT, one[:5], fin=False, masked=m, rsv=4) + frame(CONT, one[5:], masked=m, rsv=4),
        "deflate-rsv1-ping": frame(PING, b"p", masked=m, rsv=4),
        "deflate-window-15": frame(TEXT, deflated(QUOTE * 30, window=15)[0], masked=m, rsv=4),
    }


def streams(masked):
    """The remote end's byte streams, one per row of the close table (plus messages)."""
    m = masked
    return {
        "close-1000": frame(TEXT, b"hi", masked=m) + close(1000, b"bye", m),
        "close-empty": close(masked=m),
        "close-1001": close(1001, b"", m),
        "close-4000": close(4000, b"app", m),
        "close-bad-code": close(1005, b"", m),
        "close-999": close(999, b"", m),
        "close-one-byte": frame(CLOSE, b"\x03", masked=m),
        "close-bad-utf8-reason": close(1000, b"\xff\xfe", m),
        "eof-between-frames": frame(BINARY, b"\x00\x01", masked=m),
        "truncated": frame(BINARY, b"abcdef", masked=m)[:-3],
        "ping-pong": frame(PING, b"p", masked=m) + frame(PONG, b"\x00" * 8, masked=m),
        "silent": b"",
        "rsv": frame(TEXT, b"x", masked=m, rsv=4),
        "opcode-3": frame(0x3, b"", masked=m),
        "control-too-long": frame(PING, b"x" * 126, masked=m),
        "control-fragmented": frame(PING, b"x", fin=False, masked=m),
        "continuation-first": frame(CONT, b"x", masked=m),
        "text-during-fragments": frame(TEXT, b"a", fin=False, masked=m) + frame(TEXT, b"b", masked=m),
        "bad-utf8": frame(TEXT, b"\xc3\x28", masked=m),
        "utf8-split": frame(TEXT, b"\xe2\x82", fin=False, masked=m) + frame(CONT, b"\xac", masked=m),
        "fragments": frame(TEXT, b"one ", fin=False, masked=m) + frame(PING, b"", masked=m)
        + frame(CONT, b"two", masked=m),
        "len-126": frame(BINARY, b"b" * 300, masked=m),
        "len-127": frame(BINARY, b"", masked=m, length=1 << 32)[:14],
        "frame-too-big": frame(BINARY, b"z" * 5000, masked=m),
        "message-too-big": b"".join(frame(BINARY if i == 0 else CONT, b"y" * 4000, fin=i == 4, masked=m) for i in range(5)),
        "app-pong": frame(TEXT, b'{"type":"pong"}', masked=m),
    }


def framing():
    seeds = {}
    for role, masked in (("server", True), ("client", False)):
        for name, data in streams(masked).items():
            seeds[f"{role}-{name}"] = bytes([0 if role == "server" else 1]) + data
        # The wrong masking for the role: an unmasked frame to a server, a masked one to a client.
        seeds[f"{role}-wrong-masking"] = bytes([0 if role == "server" else 1]) + frame(TEXT, b"x", masked=not masked)
        # The same stream cut inside a header, to reach partial frames.
        seeds[f"{role}-cut"] = bytes([(5 << 3) | (0 if role == "server" else 1)]) + streams(masked)["fragments"]
        # permessage-deflate agreed (bit 1), with the remote end keeping its context (bit 2) for
        # the stream that needs it; and one compressed frame where nothing was agreed.
        for name, data in compressed_streams(masked).items():
            keep = 4 if name == "deflate-context-kept" else 0
            seeds[f"{role}-{name}"] = bytes([2 | keep | (0 if role == "server" else 1)]) + data
        seeds[f"{role}-deflate-not-agreed"] = bytes([0 if role == "server" else 1]) + compressed_streams(masked)["deflate-text"]
    return seeds


def upgrade(path=b"/ws?client=fuzz", extra=b""):
    return (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def connection():
    seeds = {f"upgrade-{name}": b"\xff" + upgrade() + data for name, data in streams(True).items()}
    seeds.update({
        "plain-get": b"\x00GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
        "post": b"\x00POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "wrong-path": b"\x00" + upgrade(b"/nope"),
        "wrong-version": b"\x00" + upgrade().replace(b"Version: 13", b"Version: 8"),
        "bad-key": b"\x00" + upgrade().replace(b"MDEyMzQ1Njc4OWFiY2RlZg==", b"short"),
        "bad-client": b"\x00" + upgrade(b"/ws?client=%00%ff"),
        "cross-origin": b"\x00" + upgrade(extra=b"Origin: https://evil.example\r\n"),
        "same-origin": b"\x00" + upgrade(extra=b"Origin: http://x\r\n"),
        "subprotocol": b"\x00" + upgrade(extra=b"Sec-WebSocket-Protocol: a, b\r\n"),
        "garbage": b"\x00\x16\x03\x01\x02\x00\x01\x00",
        "split-head": b"\x20" + upgrade() + frame(TEXT, b"hello") + close(1000),
        "pipelined": b"\x00" + upgrade() + upgrade(),
        "deflate-offered": b"\xff" + upgrade(extra=b"Sec-WebSocket-Extensions: permessage-deflate; "
                                              b"client_max_window_bits\r\n")
        + frame(TEXT, deflated(QUOTE * 4)[0], rsv=4) + close(1000),
        "deflate-offers": b"\xff" + upgrade(extra=b"Sec-WebSocket-Extensions: x-webkit-deflate-frame, "
                                             b"permessage-deflate; server_max_window_bits=8, permessage-deflate\r\n")
        + frame(BINARY, deflated(QUOTE * 4)[0], rsv=4),
        "deflate-malformed-offer": b"\xff" + upgrade(extra=b"Sec-WebSocket-Extensions: permessage-deflate; "
                                                      b"server_max_window_bits=7; foo\r\n")
        + frame(TEXT, deflated(QUOTE)[0], rsv=4),
    })
    return seeds


def step(leg, data):
    return bytes([leg]) + struct.pack(">H", len(data)) + data


def wait(ms):
    return bytes([2 | min(ms, 63) << 2])


def end(upstream=False, reset=False, mid_frame=False):
    return bytes([3 | upstream << 2 | reset << 3 | mid_frame << 4])


def relay():
    c = lambda data: step(0, data)  # what the client sends (masked)
    u = lambda data: step(1, data)  # what the backend sends (unmasked)
    return {
        "messages-both-ways": c(frame(TEXT, b"hi")) + u(frame(TEXT, b"hi back", masked=False))
        + u(frame(BINARY, b"\x00\x01", masked=False)) + c(frame(BINARY, b"\x02")),
        "client-closes": c(close(1000, b"bye")) + u(close(1000, b"bye", masked=False)),
        "backend-closes-4000": u(close(4000, b"app", masked=False)) + c(close(4000, b"app")),
        "backend-closes-empty": u(close(masked=False)) + c(close()),
        "backend-eof": end(upstream=True),
        "backend-reset": end(upstream=True, reset=True),
        "backend-truncated": u(frame(BINARY, b"abcdef", masked=False)[:-2]) + end(upstream=True, mid_frame=True),
        "client-eof": end(),
        "client-reset": end(reset=True),
        "backend-frozen": wait(15) + wait(15) + wait(15),
        "client-violation": c(frame(TEXT, b"x", masked=False)),
        "backend-violation": u(frame(TEXT, b"x")),
        "backend-bad-utf8": u(frame(TEXT, b"\xc3\x28", masked=False)),
        "backend-big-frame": u(frame(BINARY, b"q" * 10000, masked=False)),
        "client-fragments": c(frame(TEXT, b"a", fin=False) + frame(CONT, b"b", fin=False) + frame(CONT, b"c")),
        "pings-relayed": c(frame(PING, b"from client")) + u(frame(PONG, b"from client", masked=False))
        + u(frame(PING, b"from backend", masked=False)) + c(frame(PONG, b"from backend")),
        "backend-1005-on-wire": u(close(1005, masked=False)),
        "deflate-both-ways": c(frame(TEXT, deflated(QUOTE * 4)[0], rsv=4))
        + u(frame(TEXT, deflated(QUOTE * 4)[0], masked=False, rsv=4)),
        "deflate-fragmented": c(frame(BINARY, b"\x01\x02", fin=False, rsv=4) + frame(CONT, b"\x03")),
        # The app ping goes at 10 ms; the client leg's first protocol ping, unanswered, ends it at 30.
        "deflate-compressed-pong": wait(12) + c(frame(TEXT, deflated(b"not the pong")[0], rsv=4))
        + c(frame(TEXT, deflated(b"pong")[0], rsv=4)) + c(frame(TEXT, deflated(b"pong")[0], rsv=4)),
        "deflate-rsv1-continuation": u(frame(TEXT, b"a", fin=False, masked=False, rsv=4)
                                        + frame(CONT, b"b", masked=False, rsv=4)),
        "deflate-rsv1-ping": c(frame(PING, b"x", rsv=4)),
    }


V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command, family, body):
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack(">H", len(body)) + body


def proxy_header():
    request = b"GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1, [2001:db8::1]:80, unknown\r\n\r\n"
    inet = bytes([192, 0, 2, 7, 127, 0, 0, 1]) + struct.pack(">HH", 51234, 8080)
    inet6 = bytes(range(16)) + bytes(15) + b"\x01" + struct.pack(">HH", 4711, 443)
    tlvs = b"\x01\x00\x08http/1.1" + b"\xea\x00\x05vpc-1" + b"\x04\x00\x00"
    either, cut = 0, lambda at: at << 2
    return {
        "v1-tcp4": bytes([1 | cut(9)]) + b"PROXY TCP4 192.0.2.7 127.0.0.1 51234 8080\r\n" + request,
        "v1-tcp6": bytes([either]) + b"PROXY TCP6 2001:db8::7 ::1 51234 443\r\n" + request,
        "v1-unknown": bytes([1]) + b"PROXY UNKNOWN\r\n" + request,
        "v1-unknown-addresses": bytes([1]) + b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        "v1-longest": bytes([1]) + b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        "v1-leading-zero-port": bytes([1]) + b"PROXY TCP4 192.0.2.7 127.0.0.1 051234 8080\r\n",
        "v1-no-cr": bytes([1]) + b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n",
        "v2-inet": bytes([2 | cut(13)]) + v2(1, 0x11, inet) + request,
        "v2-inet6-tlvs": bytes([either | cut(20)]) + v2(1, 0x21, inet6 + tlvs) + request,
        "v2-local": bytes([2]) + v2(0, 0x00, b""),
        "v2-local-with-addresses": bytes([2]) + v2(0, 0x11, inet),
        "v2-unix": bytes([2]) + v2(1, 0x31, bytes(216)),
        "v2-short-body": bytes([2]) + v2(1, 0x11, inet[:6]),
        "v2-too-long": bytes([2]) + V2_SIGNATURE + b"\x21\x11\xff\xff",
        "v2-bad-version": bytes([2]) + V2_SIGNATURE + b"\x31\x11\x00\x0c" + inet,
        "plain-request": bytes([either]) + request,
        "forwarded": bytes([either]) + b'for=192.0.2.43;proto=https, for="[2001:db8:cafe::17]:4711", for=_hidden, for=unknown',
    }


def main():
    for target, seeds in (("framing", framing()), ("connection", connection()), ("relay", relay()),
                          ("proxy-header", proxy_header())):
        directory = os.path.join(ROOT, target)
        os.makedirs(directory, exist_ok=True)
        for old in os.listdir(directory):
            os.remove(os.path.join(directory, old))
        for name, data in seeds.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds in {os.path.relpath(directory)}", file=sys.stderr)


if __name__ == "__main__":
    main()
