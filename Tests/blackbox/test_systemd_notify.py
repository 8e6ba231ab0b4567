"""sd_notify as the service manager sees it, with a real datagram socket as NOTIFY_SOCKET."""

import asyncio
import json
import signal
import socket
import statistics
import time

import pytest
import websockets

from notify import NotifyListener


@pytest.fixture
def listener():
    notify = NotifyListener()
    yield notify
    notify.close()


def test_ready_only_once_both_ports_accept(vigild, listener):
    daemon = vigild(env=listener.env())
    (_, pid, ready), = listener.wait_for("READY", "1")
    # Whatever READY announces must already be true: both listeners accept connections.
    socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()
    host, port = daemon.status_url[len("http://"):].split(":")
    socket.create_connection((host, int(port)), timeout=2).close()
    assert ready["MAINPID"] == str(daemon.proc.pid) and pid == daemon.proc.pid
    assert ready["STATUS"] == "serving 0 connections; last 60 s: no closes"


def test_status_follows_connections_and_closes(vigild, listener):
    daemon = vigild(env=listener.env())
    listener.wait_for("READY", "1")

    async def scenario():
        clients = [await websockets.connect(daemon.ws(f"?client=s{i}")) for i in range(3)]
        listener.wait_for("STATUS", "serving 3 connections; last 60 s: no closes")
        for client in clients:
            await client.close()

    asyncio.run(scenario())
    listener.wait_for("STATUS", "serving 0 connections; last 60 s: 3 normal")
    statuses = [m for m in listener.with_key("STATUS") if "READY" not in m[2]]
    texts = [m[2]["STATUS"] for m in statuses]
    assert all(a != b for a, b in zip(texts, texts[1:])), "STATUS only on change"
    times = [m[0] for m in statuses]
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:])), "at most once a second"


def test_stopping_on_sigterm(vigild, listener):
    """STOPPING=1 comes with EXTEND_TIMEOUT_USEC: the longest the drain may take (drain window +
    close timeout + 3 s), so a close_timeout longer than the unit's TimeoutStopSec= is not cut
    short by SIGKILL with records still being made."""
    daemon = vigild("--close-timeout", "20s", "--drain-window", "2s", env=listener.env())
    listener.wait_for("READY", "1")
    daemon.proc.send_signal(signal.SIGTERM)
    stopping = listener.wait_for("STOPPING", "1")
    assert daemon.stop() == 0
    assert stopping[0][2]["STATUS"].startswith("stopping")
    assert stopping[0][2]["EXTEND_TIMEOUT_USEC"] == str((2 + 20 + 3) * 1_000_000)


def test_reload_applies_timers_to_live_connections(vigild, listener, tmp_path):
    config = tmp_path / "vigil.yaml"
    config.write_text("ping_interval: 10s\n")
    daemon = vigild("--config", str(config), env=listener.env())
    listener.wait_for("READY", "1")

    async def scenario():
        async with websockets.connect(daemon.ws("?client=reloaded")) as ws:
            await asyncio.sleep(0.3)
            assert daemon.get_json("/connections")["connections"][0]["pings_sent"] == 0
            config.write_text("ping_interval: 100ms\nmax_connections: 5\n")
            before = time.monotonic()
            now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            daemon.proc.send_signal(signal.SIGHUP)
            (reloading,) = listener.wait_for("RELOADING", "1", after=before)
            assert abs(int(reloading[2]["MONOTONIC_USEC"]) - now_usec) < 5_000_000
            (ready,) = listener.wait_for("READY", "1", after=reloading[0])
            assert ready[0] >= reloading[0]
            await asyncio.sleep(1.0)
            live = daemon.get_json("/connections")["connections"]
            assert len(live) == 1 and live[0]["client"] == "reloaded", "the connection survived the reload"
            assert live[0]["pings_sent"] >= 5, live
            await ws.send("still here")
            assert await ws.recv() == "still here"

    asyncio.run(scenario())
    status = daemon.get_json("/status")
    assert status["config"]["ping_interval"] == "100ms"
    assert status["config"]["max_connections"] == "10000", "needs a restart, so unchanged"
    daemon.wait_for_log(lambda e: "configuration reloaded: ping_interval 10s → 100ms" in e["message"])
    daemon.wait_for_log(lambda e: "max_connections changed from 10000 to 5" in e["message"] and e["level"] == "warning")


def test_failed_reload_keeps_serving_and_says_ready(vigild, listener, tmp_path):
    config = tmp_path / "vigil.yaml"
    config.write_text("ping_interval: 10s\n")
    daemon = vigild("--config", str(config), env=listener.env())
    listener.wait_for("READY", "1")
    config.write_text("ping_interval: often\n")
    before = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    (reloading,) = listener.wait_for("RELOADING", "1", after=before)
    listener.wait_for("READY", "1", after=reloading[0])
    daemon.wait_for_log(lambda e: e["level"] == "error" and 'invalid value "often" for ping_interval' in e["message"])
    assert daemon.get_json("/status")["config"]["ping_interval"] == "10s"
    assert daemon.get("/readyz")[0] == 200


def test_watchdog_cadence(vigild, listener):
    vigild(env={**listener.env(), "WATCHDOG_USEC": "400000"})
    listener.wait_for("READY", "1")
    pings = listener.wait_for("WATCHDOG", "1", count=10, timeout=10)
    gaps = [b[0] - a[0] for a, b in zip(pings, pings[1:])]
    assert 0.15 <= statistics.median(gaps) <= 0.3, gaps  # half of WatchdogSec=400ms
    assert max(gaps) < 0.4, "never a full interval without a keep-alive"


def test_watchdog_for_another_pid_is_ignored(vigild, listener):
    daemon = vigild(env={**listener.env(), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    listener.wait_for("READY", "1")
    time.sleep(0.6)
    assert not listener.with_key("WATCHDOG")
    assert daemon.get("/livez")[0] == 200


def test_invalid_watchdog_usec_is_logged_not_fatal(vigild, listener):
    daemon = vigild(env={**listener.env(), "WATCHDOG_USEC": "soon"})
    listener.wait_for("READY", "1")
    daemon.wait_for_log(lambda e: e["level"] == "warning" and 'WATCHDOG_USEC="soon"' in e["message"])
    assert daemon.get("/livez")[0] == 200


def test_unreachable_notify_socket_is_logged_once(vigild, tmp_path):
    daemon = vigild(env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})

    async def scenario():
        async with websockets.connect(daemon.ws()) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"

    asyncio.run(scenario())
    time.sleep(1.2)  # a status update or two fail as well
    warnings = [e for e in daemon.json_logs() if "cannot reach the service manager" in e["message"]]
    assert len(warnings) == 1
