"""Peers for the fault tests, run inside the peer's network namespace.

Usage: fault_peer.py MODE HOST PORT [N]
  hold N     N WebSocket connections that answer pings; prints "ready", then waits to be killed
  chatter N  as hold, each connection also sending a message every 50 ms (killed mid-conversation)
  rst N      N connections; prints "ready", then on a line on stdin closes all with an RST
  noread     one connection that sends echo requests as fast as it can and never reads
"""

import asyncio
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import websockets  # noqa: E402

from wsraw import RawPeer  # noqa: E402


async def hold(url, n, chatter):
    clients = [await websockets.connect(f"{url}?client=peer{i}", ping_interval=None) for i in range(n)]
    print("ready", flush=True)

    async def talk(ws):
        while True:
            await ws.send("chatter")
            await ws.recv()
            await asyncio.sleep(0.05)

    if chatter:
        await asyncio.gather(*(talk(ws) for ws in clients))
    await asyncio.Event().wait()


def rst(host, port, n):
    peers = [RawPeer(port, f"/ws?client=rst{i}", host=host) for i in range(n)]
    print("ready", flush=True)
    sys.stdin.readline()
    for peer in peers:
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.sock.close()
    print("reset", flush=True)


def noread(host, port):
    peer = RawPeer(port, "/ws?client=noread", host=host)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Block for as long as vigild does not read: with RawPeer's 10 s timeout the peer gave up
    # and exited (its kernel resetting the connection) 10 s after it blocked, racing vigild's
    # 10 s write timeout, which had started only a few milliseconds earlier: under load the peer
    # sometimes won, and the close was recorded as reset.
    peer.sock.settimeout(None)
    chunk = b"\x82\xfe\x40\x00" + b"\x00\x00\x00\x00" + b"z" * 16384
    print("ready", flush=True)
    try:
        while True:
            peer.sock.sendall(chunk)
    except OSError:
        print("closed", flush=True)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    url = f"ws://{host}:{port}/ws"
    if mode in ("hold", "chatter"):
        asyncio.run(hold(url, int(sys.argv[4]), mode == "chatter"))
    elif mode == "rst":
        rst(host, port, int(sys.argv[4]))
    elif mode == "noread":
        noread(host, port)


if __name__ == "__main__":
    main()
