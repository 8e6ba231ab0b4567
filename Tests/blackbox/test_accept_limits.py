"""Connections that never upgrade, and limits per address: a flood of idle TCP connections on
the WebSocket port is capped by max_pending_handshakes (503 beyond), cannot take the descriptors
the status API and sd_notify need, and max_connections_per_ip refuses one address's surplus
with 429 and Retry-After, logged once per address and minute rather than once per request."""

import asyncio
import resource
import socket
import time

import websockets

from notify import NotifyListener
from systemd_support import wait_until


def idle_connections(daemon, count, source=None):
    """`count` TCP connections to the WebSocket port that send nothing."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        if source:
            sock.bind((source, 0))
        sock.settimeout(10)
        sock.connect((daemon.host, daemon.port))
        socks.append(sock)
    return socks


def close_all(socks):
    for sock in socks:
        sock.close()


async def handshake_status(url, source=None):
    """101 when the upgrade succeeds (then closes normally), else the refusal's (status, headers, body)."""
    try:
        async with websockets.connect(url, open_timeout=10, **({"local_addr": (source, 0)} if source else {})):
            return 101
    except websockets.InvalidStatus as refused:
        response = refused.response
        return response.status_code, response.headers, response.body


def rejected(daemon, reason):
    return daemon.metrics().get(f'vigil_handshakes_rejected_total{{reason="{reason}"}}', 0)


def test_pending_handshakes_are_capped_and_a_refused_client_hears_why(vigild):
    """At the default max_pending_handshakes (1024): 1024 idle connections fill it, the next
    handshake gets 503 naming the setting, and once the idle ones go a handshake succeeds."""
    daemon = vigild()
    held = idle_connections(daemon, 1024)
    try:
        # Accepted in order: by the time vigild takes this handshake, the 1024 are pending.
        status, headers, body = asyncio.run(handshake_status(daemon.ws("?client=late")))
        assert status == 503, f"a handshake behind 1024 pending ones: {status}"
        assert headers["Retry-After"] == "1"
        assert daemon.get_json("/status")["handshakes_pending"] == 1024
        assert b"max_pending_handshakes" in body
        assert rejected(daemon, "pending_handshakes") == 1
        # A refused connection that sends nothing is not held for the handshake timeout.
        extra = idle_connections(daemon, 1)[0]
        started = time.monotonic()
        assert extra.recv(1) == b""
        assert time.monotonic() - started < 5
        extra.close()
    finally:
        close_all(held)
    wait_until(lambda: daemon.get_json("/status")["handshakes_pending"] == 0, "the pending handshakes gone")
    assert asyncio.run(handshake_status(daemon.ws())) == 101


def test_a_flood_of_idle_connections_leaves_descriptors_for_the_status_api_and_sd_notify(vigild):
    """With RLIMIT_NOFILE at 400, 600 idle connections: those beyond what the reserve leaves are
    closed at once, /livez answers throughout, the watchdog keep-alives keep coming, and vigild
    serves WebSockets again once the flood is gone."""
    notify = NotifyListener()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    try:
        daemon = vigild("--handshake-timeout", "60s", env={**notify.env(), "WATCHDOG_USEC": "1000000"},
                        preexec_fn=low_limit)
        notify.wait_for("READY", "1")
        held = idle_connections(daemon, 600)
        try:
            wait_until(lambda: rejected(daemon, "descriptors") > 0, "connections closed for want of descriptors")
            dropped = 0
            for sock in held:
                sock.settimeout(0.05)
                try:
                    if sock.recv(1) == b"":
                        dropped += 1
                except (socket.timeout, ConnectionResetError):
                    pass
            assert dropped >= 600 - 400, f"only {dropped} of 600 closed at once"
            assert rejected(daemon, "descriptors") == dropped
            for _ in range(5):
                assert daemon.get("/livez")[0] == 200
            flood_started = time.monotonic()
            time.sleep(2)
            beats = [m for m in notify.with_key("WATCHDOG", "1") if m[0] >= flood_started]
            assert len(beats) >= 3, f"{len(beats)} WATCHDOG=1 in 2 s of the flood (every 0.5 s expected)"
            assert daemon.wait_for_log(lambda e: "closing an accepted connection unanswered" in e.get("message", ""))
        finally:
            close_all(held)
        wait_until(lambda: asyncio.run(handshake_status(daemon.ws())) == 101, "a WebSocket served after the flood")
    finally:
        notify.close()


def test_connections_per_address_beyond_the_limit_get_429_logged_once(vigild):
    daemon = vigild("--max-connections-per-ip", "5")

    async def scenario():
        opened = [await websockets.connect(daemon.ws(f"?client=c{i}")) for i in range(5)]
        status, headers, body = await handshake_status(daemon.ws("?client=sixth"))
        assert status == 429 and headers["Retry-After"] == "5"
        assert b"127.0.0.1 already has 5 connections (max_connections_per_ip)" in body
        for _ in range(100):
            assert (await handshake_status(daemon.ws()))[0] == 429
        # Another address is counted apart.
        assert await handshake_status(daemon.ws("?client=other"), source="127.0.0.2") == 101
        await opened.pop().close()
        await asyncio.sleep(0.2)
        assert await handshake_status(daemon.ws("?client=after")) == 101
        for ws in opened:
            await ws.close()

    asyncio.run(scenario())
    assert rejected(daemon, "per_ip_limit") == 101
    lines = [e for e in daemon.json_logs() if "refusing connections from 127.0.0.1" in e.get("message", "")]
    assert len(lines) == 1, f"{len(lines)} log lines for 101 refusals from one address"
    assert lines[0]["level"] == "warning" and "max_connections_per_ip" in lines[0]["message"]
