"""Faults on a real link: peers live in their own network namespace behind a veth pair, so the
link can be broken for real (iptables drops every packet), peers can be killed or reset, and
vigild must record every ending, once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, rfc3339_ns, rss_kib, stalled_at
from systemd_support import require_root, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(ROOT, ".build", "debug", "vigil-load")


class Namespace:
    """A peer namespace with its own address, joined to the host by a veth pair."""

    def __init__(self):
        tag = os.getpid() % 200 + 20
        self.name = f"vigil{os.getpid()}"
        self.host_if, self.peer_if = f"vh{os.getpid()}"[:15], f"vp{os.getpid()}"[:15]
        self.host_ip, self.peer_ip = f"10.213.{tag}.1", f"10.213.{tag}.2"
        for command in (
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if],
            ["ip", "link", "set", self.peer_if, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if],
            ["ip", "link", "set", self.host_if, "up"],
            *[["ip", "netns", "exec", self.name, *c] for c in (
                ["ip", "addr", "add", f"{self.peer_ip}/24", "dev", self.peer_if],
                ["ip", "link", "set", self.peer_if, "up"],
                ["ip", "link", "set", "lo", "up"])],
        ):
            subprocess.run(command, check=True, capture_output=True)

    def popen(self, *command, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *command], **kwargs)

    def peer(self, mode, port, *args):
        return self.popen(sys.executable, os.path.join(HERE, "fault_peer.py"), mode, self.host_ip, str(port), *args,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def drop_everything(self):
        for chain in ("INPUT", "OUTPUT"):
            subprocess.run(["ip", "netns", "exec", self.name, "iptables", "-A", chain, "-j", "DROP"], check=True)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)


@pytest.fixture
def netns():
    require_root()
    for tool in ("ip", "iptables"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.fail(f"{tool} is missing: make test installs iproute2 and iptables")
    namespace = Namespace()
    yield namespace
    namespace.delete()


def serve(vigild, netns, *flags):
    return vigild("--listen", f"{netns.host_ip}:0", *flags)


def wait_ready(process):
    line = process.stdout.readline()
    assert line.strip() == "ready", line


def test_a_half_open_link_is_detected_within_p_plus_t(vigild, netns):
    daemon = serve(vigild, netns, "--ping-interval", "500ms", "--pong-timeout", "500ms")
    peer = netns.peer("hold", daemon.port, "50")
    wait_ready(peer)
    time.sleep(1.2)  # every connection has answered a ping or two
    assert daemon.get_json("/status")["connections"] == 50
    dropped_at = time.time_ns()
    netns.drop_everything()
    records = daemon.wait_closes(50, timeout=10)
    peer.kill()
    assert {(r["kind"], r["cause"]) for r in records} == {("abnormal", "pong_timeout")}
    latencies = [(rfc3339_ns(r["closed_at"]) - dropped_at) / 1e6 for r in records]
    print(f"half-open link: closed {min(latencies):.0f}–{max(latencies):.0f} ms after the link died (P + T = 1000 ms)")
    assert max(latencies) <= 1000 + 100, latencies


def test_peers_killed_mid_conversation_end_as_eof_or_reset(vigild, netns):
    daemon = serve(vigild, netns, "--ping-interval", "0")
    peer = netns.peer("chatter", daemon.port, "20")
    wait_ready(peer)
    time.sleep(0.5)
    peer.send_signal(signal.SIGKILL)
    peer.wait()
    records = daemon.wait_closes(20)
    causes = {r["cause"] for r in records}
    assert causes <= {"eof", "reset"}, causes
    assert all(r["messages_in"] > 0 for r in records), "they were mid-conversation"


def test_peers_that_reset_end_as_abnormal_reset(vigild, netns):
    daemon = serve(vigild, netns, "--ping-interval", "0")
    peer = netns.peer("rst", daemon.port, "20")
    wait_ready(peer)
    peer.stdin.write("go\n")
    peer.stdin.flush()
    assert peer.stdout.readline().strip() == "reset"
    records = daemon.wait_closes(20)
    assert {(r["kind"], r["cause"], r["initiator"]) for r in records} == {("abnormal", "reset", "peer")}


def test_ten_thousand_connections_dropped_at_once_are_all_recorded_once(vigild, netns):
    daemon = serve(vigild, netns, "--ping-interval", "0", "--max-connections", "12000", "--close-history", "12000")
    load = netns.popen(LOAD, "--url", f"ws://{netns.host_ip}:{daemon.port}/ws", "-c", "10000", "--duration", "300s",
                       "--no-close", stdout=subprocess.PIPE, text=True)
    connected = json.loads(load.stdout.readline())
    assert connected["connections"] == 10000, connected
    wait_until(lambda: daemon.get_json("/status")["connections"] == 10000, "10000 live connections", 60)
    load.send_signal(signal.SIGKILL)
    load.wait()
    records = daemon.wait_closes(10000, timeout=60)
    assert len(records) == 10000 and len({r["id"] for r in records}) == 10000
    status = daemon.get_json("/status")
    assert status["closes_total"] == 10000 and status["connections"] == 0
    metrics = daemon.metrics()
    assert sum(v for k, v in metrics.items() if k.startswith("vigil_closes_total")) == 10000
    assert metrics['vigil_connections_opened_total{leg="client"}'] == 10000
    daemon.stop()
    closes_logged = [e for e in daemon.json_logs() if e.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert len(closes_logged) == 10000


def test_sigterm_with_5000_live_connections_sends_1001_to_all_and_exits_0(vigild, netns):
    daemon = serve(vigild, netns, "--ping-interval", "0", "--close-timeout", "5s")
    load = netns.popen(LOAD, "--url", f"ws://{netns.host_ip}:{daemon.port}/ws", "-c", "5000", "--duration", "300s",
                       stdout=subprocess.PIPE, text=True)
    assert json.loads(load.stdout.readline())["connections"] == 5000
    wait_until(lambda: daemon.get_json("/status")["connections"] == 5000, "5000 live connections", 60)
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(30)
    drained = time.monotonic() - started
    done = json.loads(load.stdout.readlines()[-1])
    load.wait(30)
    assert code == 0
    print(f"SIGTERM with 5000 connections: exited 0 after {drained:.2f} s")
    assert drained <= 5 + 1 + 2, "within the drain time (close timeout + 1 s) and process exit"
    assert done["server_close_codes"] == {"1001": 5000}, done
    daemon.stop()
    closes = [e for e in daemon.json_logs() if e.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert len(closes) == 5000 and {e["ws_close_cause"] for e in closes} == {"shutdown"}
    assert sum(e["ws_close_clean"] == "true" for e in closes) == 5000


def test_a_peer_that_never_reads_is_a_slow_consumer_with_bounded_memory(vigild, netns):
    """Over a real link: the peer sends echo requests and never reads. vigild stops reading it
    once its own output backs up, and closes it when the backlog has stayed over max_backlog for
    the write timeout (the default, 10 s)."""
    daemon = serve(vigild, netns, "--ping-interval", "0", "--max-backlog", "256KiB")
    before = rss_kib(daemon.proc.pid)
    peer = netns.peer("noread", daemon.port)
    wait_ready(peer)
    stalled = stalled_at(daemon, "noread")
    record = daemon.wait_closes(1, timeout=30)[0]
    grown = rss_kib(daemon.proc.pid) - before
    peer.kill()
    assert (record["kind"], record["cause"], record["initiator"]) == ("abnormal", "slow_consumer", "vigild")
    closed_after_stall = rfc3339_ns(record["closed_at"]) / 1e9 - stalled
    print(f"slow consumer: closed {closed_after_stall:.2f} s after the stall ({record['duration_ms']} ms after it "
          f"opened) and {record['messages_in']} messages in, RSS grew {grown} KiB")
    assert 9.5 <= closed_after_stall <= 12, "the write timeout, counted from when the backlog backed up"
    assert grown < 16 * 1024, "memory stays bounded near the 256 KiB backlog limit"


def test_proxy_a_client_whose_link_dies_gets_its_backend_a_1001_within_p_plus_t(vigild, netns):
    """The traefik#10627 case: clients behind vigild's proxy lose their link (every packet
    dropped in their namespace). vigild's heartbeat on the client leg finds each dead within
    P + T, and closes the backend leg with 1001: the backend hears of it, instead of holding the
    connection forever."""
    from test_proxy import Backend
    backend = Backend()
    try:
        daemon = serve(vigild, netns, "--mode", "proxy", "--upstream", backend.url("/app"),
                       "--ping-interval", "500ms", "--pong-timeout", "500ms", "--upstream-ping-interval", "0")
        peer = netns.peer("hold", daemon.port, "20")
        wait_ready(peer)
        time.sleep(1.2)
        assert daemon.get_json("/status")["connections"] == 40, "20 pairs, two legs each"
        dropped = time.monotonic()
        netns.drop_everything()
        deadline = dropped + 5
        while len(backend.closes()) < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        heard = time.monotonic() - dropped
        closes = backend.closes()
        peer.kill()
        print(f"proxy, client links dead: the backend had all 20 closes {heard * 1000:.0f} ms after the link died "
              f"(P + T = 1000 ms)")
        assert closes == ["closed 1001 client leg ended: pong_timeout"] * 20
        assert heard <= 1.0 + 0.1
        records = daemon.wait_closes(40)
        by_leg = {}
        for record in records:
            by_leg.setdefault(record["leg"], []).append(record)
        assert {(r["cause"], r["initiator"]) for r in by_leg["client"]} == {("pong_timeout", "vigild")}
        assert {(r["code"], r["cause"], r["partner_cause"]) for r in by_leg["upstream"]} == \
            {(1001, "partner_closed", "pong_timeout")}
        assert {r["pair_id"] for r in by_leg["client"]} == {r["pair_id"] for r in by_leg["upstream"]}
    finally:
        backend.stop()
