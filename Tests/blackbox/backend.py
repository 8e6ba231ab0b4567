"""An independent WebSocket backend for the proxy tests, on Python websockets, run as its own
process so a test can SIGKILL or SIGSTOP it.

Usage: backend.py [PORT [CERT KEY]]   prints "ready PORT" once listening; with CERT and KEY
(PEM files) it speaks TLS (wss://).

- every path echoes text and binary messages (any size);
- a path containing `/headers`: the first message is a JSON object with the request's path and headers;
- `/forbidden`: refused with 403, `WWW-Authenticate` and a body; `/busy`: 503 with `Retry-After`;
- `/noread`: never reads (its socket fills and TCP pushes back);
- `/mute`: reads every message and answers none (pings are still answered: a service whose
  application is stuck);
- subprotocols: `chat.v2` is chosen when offered, else none;
- a text message `close CODE REASON` makes the backend close with that code and reason;
- a text message `ping PAYLOAD` makes the backend send a ping of its own with that payload;
- every pong the backend receives is reported back as a text message `pong PAYLOAD`;
- each ended connection is printed as `closed CODE REASON` (rcvd close frame, or `none`);
- over TLS, each client's server name is printed as `sni NAME` (`sni none` without one).

With BACKEND_PLAIN_ECHO=1 in the environment it only echoes (no commands): the conformance run.
BACKEND_HOST is the address it listens on (127.0.0.1 by default); with BACKEND_COMPRESSION=1 it
accepts permessage-deflate (websockets' own defaults), else no extension.
"""

import asyncio
import json
import os
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response


def refuse(connection, request):
    if request.path == "/forbidden":
        return Response(403, "Forbidden", Headers([("WWW-Authenticate", 'Bearer realm="vigil-test"'),
                                                   ("Content-Type", "text/plain")]), b"no token, no socket\n")
    if request.path == "/busy":
        return Response(503, "Service Unavailable", Headers([("Retry-After", "7"), ("Content-Type", "text/plain")]),
                        b"come back later\n")
    return None


def choose(connection, subprotocols):
    return "chat.v2" if "chat.v2" in subprotocols else None


async def handler(ws):
    if ws.request.path == "/noread":
        ws.protocol.max_size = None
        await ws.wait_closed()
        return
    if ws.request.path == "/mute":
        async for _ in ws:
            pass
        return
    if "/headers" in ws.request.path:
        await ws.send(json.dumps({"path": ws.request.path, "headers": list(ws.request.headers.raw_items()),
                                  "subprotocol": ws.subprotocol}))
    plain = os.environ.get("BACKEND_PLAIN_ECHO") == "1"
    try:
        async for message in ws:
            if plain:
                await ws.send(message)
                continue
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                await ws.close(int(code), reason)
                break
            if isinstance(message, str) and message.startswith("ping "):
                waiter = await ws.ping(message[5:].encode())
                await waiter
                await ws.send("pong " + message[5:])
                continue
            await ws.send(message)
    except ConnectionClosed:
        pass
    finally:
        rcvd = ws.protocol.close_rcvd
        print(f"closed {rcvd.code if rcvd else 'none'} {rcvd.reason if rcvd else ''}", flush=True)


async def main(port, tls):
    compression = "deflate" if os.environ.get("BACKEND_COMPRESSION") else None
    async with serve(handler, os.environ.get("BACKEND_HOST", "127.0.0.1"), port, process_request=refuse, select_subprotocol=choose,
                     max_size=None, ping_interval=None, compression=compression, ssl=tls) as server:
        print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    context = None
    if len(sys.argv) > 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        # Each TLS client's server name (SNI), or "sni none" when it sent none.
        context.sni_callback = lambda _socket, name, _context: print(f"sni {name or 'none'}", flush=True)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0, context))
