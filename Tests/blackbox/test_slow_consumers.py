"""Slow consumers are decided by time, not by a snapshot of the backlog: a connection is closed
when its unwritten output has stayed over max_backlog for write_timeout (default 10 s), or at once
when it would hold more than max_backlog + max_message. All at the defaults a user has."""

import asyncio
import socket
import threading
import time

import websockets

from wsraw import RawPeer, frame

MIB = 1 << 20


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_1mib_message_is_echoed_at_the_defaults(vigild):
    """max_message and max_backlog are both 1 MiB by default: the echo of one allowed message
    (sent in 64 KiB fragments, the default max_frame) is more than the kernel takes in one write,
    and must still go out to a peer that reads it."""
    daemon = vigild()

    async def scenario():
        async with websockets.connect(daemon.ws("?client=big"), max_size=None, ping_interval=None) as ws:
            for round_trip in range(10):
                payload = bytes([round_trip]) * MIB
                await ws.send([payload[i:i + 65536] for i in range(0, MIB, 65536)])
                assert await ws.recv() == payload
            await ws.close(1000, "done")

    asyncio.run(scenario())
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["cause"], record["messages_out"]) == ("normal", "peer_close", 10)


def test_a_peer_that_reads_slowly_but_steadily_is_not_a_slow_consumer(vigild):
    """The echo of 1 MiB read at about 300 KiB/s takes over 3 s, far more than one snapshot of the
    backlog allows, and well within the write timeout."""
    daemon = vigild()
    peer = RawPeer(daemon.port, "/ws?client=steady")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    payload = b"s" * MIB
    fragments = [payload[i:i + 65536] for i in range(0, MIB, 65536)]
    peer.send_raw(b"".join(frame(0x2 if i == 0 else 0x0, f, fin=i == len(fragments) - 1) for i, f in enumerate(fragments)))
    started = time.monotonic()
    received = b""
    peer.sock.settimeout(5)
    while len(received) < MIB + 16 * 4:  # 16 fragments, a 4-byte header each
        chunk = peer.sock.recv(16384)
        assert chunk, f"closed after {len(received)} bytes"
        received += chunk
        time.sleep(0.05)
    took = time.monotonic() - started
    # The echo comes in fragments of max_frame (64 KiB): take the frames apart.
    peer.buffer = received
    echoed = b""
    while len(echoed) < MIB:
        opcode, data = peer.read_frame()
        assert opcode in (0x2, 0x0)
        echoed += data
    assert echoed == payload
    assert peer.buffer == b""
    peer.answer_close(1000)
    assert peer.read_until_close() == (1000, "")
    print(f"1 MiB echo read over {took:.1f} s")
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["cause"]) == ("normal", "peer_close")
    assert took > 2, "the peer really was slower than the kernel's buffers"


def test_a_peer_that_never_reads_is_closed_after_the_write_timeout_with_bounded_memory(vigild):
    daemon = vigild("--ping-interval", "0")
    peer = RawPeer(daemon.port, "/ws?client=noread")
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = rss_kib(daemon.proc.pid)
    message = frame(0x2, b"n" * 65000)
    sent = [0]

    def flood():
        try:
            while True:
                peer.sock.sendall(message)
                sent[0] += len(message)
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    record = daemon.wait_closes(1, timeout=30)[0]
    grown = rss_kib(daemon.proc.pid) - before
    peer.close()
    print(f"never-reading peer: closed after {record['duration_ms']} ms, {sent[0] // 1024} KiB sent, "
          f"{record['messages_in']} messages in, RSS grew {grown} KiB")
    assert (record["kind"], record["cause"], record["initiator"], record["code"]) == \
        ("abnormal", "slow_consumer", "vigild", 1006)
    assert 10_000 <= record["duration_ms"] <= 12_000, "closed by the 10 s write timeout"
    assert grown < 24 * 1024, "RSS bounded: max_backlog + max_message of output, vigild stops reading the rest"
