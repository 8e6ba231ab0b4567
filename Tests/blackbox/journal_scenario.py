"""Runs inside a private mount namespace (see test_journal.py): a real journald on a tmpfs /run,
vigild logging to it, every close kind driven, then journald stopped mid-run.

Usage: journal_scenario.py VIGILD JOURNAL_DIR VIGIL_LOAD
Exits non-zero with the reason when anything does not hold."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_close_table as rows  # noqa: E402
from systemd_support import Endpoint, journal_entries, wait_until  # noqa: E402

MESSAGE_ID = "5bfe117f0f644f8c8afabe45870ad1cb"
VIGILD, JOURNAL_DIR, LOAD = sys.argv[1], sys.argv[2], sys.argv[3]


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def journal(*matches):
    return journal_entries(
        subprocess.run(["journalctl", "--no-pager", "-o", "json", *matches], capture_output=True, text=True).stdout)


def wait(predicate, what, timeout=10):
    return wait_until(predicate, what, timeout)


def get(url):
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


# A private /run: journald's sockets and runtime journal live here, the host's /run is untouched.
sh("mount", "-t", "tmpfs", "tmpfs", "/run")
os.makedirs("/run/systemd/journal")
os.makedirs("/run/log")
sh("mount", "--bind", JOURNAL_DIR, "/run/log")
# No global rate limit: this journald serves vigild alone, whose unit sets its own (50000 in 10 s).
journald_conf = os.path.join(JOURNAL_DIR, "journald.conf")
with open(journald_conf, "w") as f:
    f.write("[Journal]\nRateLimitIntervalSec=0\n")
sh("mount", "--bind", journald_conf, "/etc/systemd/journald.conf")
journald = subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait(lambda: os.path.exists("/run/systemd/journal/socket"), "journald's socket")

stderr_path = os.path.join(JOURNAL_DIR, "vigild.stderr")
stderr = open(stderr_path, "w")
# Flags the close-table drivers need (pong timeout, read deadline, limits), and --log auto:
# the journal socket accepts connections, so vigild must pick the journal by itself.
daemon = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", *rows.FLAGS],
                          stderr=stderr, stdout=subprocess.DEVNULL)
try:
    ready = wait(lambda: [e for e in journal("SYSLOG_IDENTIFIER=vigild") if "vigild ready" in e["MESSAGE"]],
                 "vigild's ready line in the journal")[0]
    ws_url = ready["MESSAGE"].split("ws=")[1].split(" ")[0]
    status_url = ready["MESSAGE"].split("status=")[1].split(" ")[0]
    host, port = ws_url[len("ws://"):].split("/")[0].split(":")
    endpoint = Endpoint(host, int(port))

    expected = {}  # client -> (kind, cause, priority)
    asyncio.run(rows.ws_close_with(endpoint, "normal", 1000, "bye"))
    expected["normal"] = ("normal", "peer_close", "6")
    asyncio.run(rows.ws_close_with(endpoint, "going_away", 1001, ""))
    expected["going_away"] = ("going_away", "peer_close", "6")
    rows.raw_eof(endpoint)
    expected["eof"] = ("eof", "eof", "5")
    rows.raw_reset(endpoint)
    expected["reset"] = ("abnormal", "reset", "4")
    rows.raw_truncated(endpoint)
    expected["truncated"] = ("abnormal", "truncated_frame", "4")
    assert rows.raw_pong_timeout(endpoint) == (1008, "pong timeout")
    expected["pong_timeout"] = ("abnormal", "pong_timeout", "4")
    assert rows.raw_read_deadline(endpoint) == (1008, "read deadline exceeded")
    expected["read_deadline"] = ("abnormal", "read_deadline", "4")
    rows.raw_violation(endpoint, "unmasked", lambda p: p.send_frame(0x1, b"x", mask=False))
    expected["unmasked"] = ("error", "protocol_error", "4")
    asyncio.run(rows.ws_close_with(endpoint, "app_error", 4000, "app"))
    expected["app_error"] = ("error", "peer_close", "4")
    rows.raw_slow_consumer(endpoint)
    expected["slow_consumer"] = ("abnormal", "slow_consumer", "4")

    # A reason that would be a second field if the journal protocol were text: one field each.
    forged = "a\nWS_CLOSE_KIND=normal"
    rows.raw_close_reason(endpoint, "forger", 4000, forged)
    expected["forger"] = ("error", "peer_close", "4")

    wait(lambda: get(status_url + "/closes")["total"] == len(expected), "every close in /closes")
    entries = wait(lambda: (lambda e: e if len(e) >= len(expected) else None)(journal(f"MESSAGE_ID={MESSAGE_ID}")),
                   "every close in the journal")
    assert len(entries) == len(expected), f"{len(entries)} journal entries for {len(expected)} closes"
    by_client = {entry["WS_CLIENT"]: entry for entry in entries}
    assert set(by_client) == set(expected), sorted(by_client)
    records = {record["client"]: record for record in get(status_url + "/closes")["closes"]}
    fields = ["WS_CONN_ID", "WS_PEER", "WS_CLIENT", "WS_PATH", "WS_CLOSE_KIND", "WS_CLOSE_CODE", "WS_CLOSE_CAUSE",
              "WS_CLOSE_INITIATOR", "WS_CLOSE_CLEAN", "WS_CLOSE_REASON", "WS_DURATION_MS", "WS_RTT_MS"]
    for client, (kind, cause, priority) in expected.items():
        entry, record = by_client[client], records[client]
        missing = [f for f in fields if f not in entry]
        assert not missing, f"{client}: missing {missing}"
        assert (entry["WS_CLOSE_KIND"], entry["WS_CLOSE_CAUSE"], entry["PRIORITY"]) == (kind, cause, priority), entry
        assert entry["WS_CONN_ID"] == str(record["id"]) and entry["WS_PEER"] == record["peer"]
        assert entry["WS_CLOSE_CODE"] == str(record["code"]) and entry["WS_CLOSE_INITIATOR"] == record["initiator"]
        assert entry["WS_CLOSE_CLEAN"] == str(record["clean"]).lower() and entry["WS_CLOSE_REASON"] == record["reason"]
        assert entry["WS_PATH"] == "/ws" and entry["SYSLOG_IDENTIFIER"] == "vigild"
        assert entry["CODE_FILE"].endswith("CloseLogging.swift") and entry["CODE_FUNC"] and entry["CODE_LINE"]
        assert entry["MESSAGE"].startswith(f"connection {record['id']} from {record['peer']} (client={client}) closed: {kind} ({cause}) after ")
    assert journal(f"MESSAGE_ID={MESSAGE_ID}", "WS_CLOSE_KIND=abnormal").__len__() == 5
    assert (by_client["forger"]["WS_CLOSE_KIND"], by_client["forger"]["WS_CLOSE_REASON"]) == ("error", forged), \
        "exactly one WS_CLOSE_KIND (journalctl shows a field given twice as a list)"

    # 10,000 connections dropped at once, on a second vigild without heartbeat deadlines:
    # exactly one journal entry each, as in its /closes and /metrics.
    burst_daemon = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                                     "--ping-interval", "0", "--max-connections", "12000", "--close-history", "12000"],
                                    stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        burst_ready = wait(lambda: [e for e in journal("SYSLOG_IDENTIFIER=vigild", f"_PID={burst_daemon.pid}")
                                    if "vigild ready" in e["MESSAGE"]], "the second vigild's ready line")[0]
        burst_ws = burst_ready["MESSAGE"].split("ws=")[1].split(" ")[0]
        burst_status = burst_ready["MESSAGE"].split("status=")[1].split(" ")[0]
        load = subprocess.Popen([LOAD, "--url", burst_ws, "-c", "10000", "--duration", "300s", "--no-close"],
                                stdout=subprocess.PIPE, text=True)
        assert json.loads(load.stdout.readline())["connections"] == 10000
        wait(lambda: get(burst_status + "/status")["connections"] == 10000, "10000 live connections", 60)
        load.kill()
        load.wait()
        wait(lambda: get(burst_status + "/status")["closes_total"] == 10000, "10000 closes", 60)
        matches = (f"MESSAGE_ID={MESSAGE_ID}", f"_PID={burst_daemon.pid}")
        burst = wait(lambda: (lambda e: e if len(e) >= 10000 else None)(journal(*matches)), "10000 journal entries", 60)
        assert len(burst) == 10000, f"{len(burst)} journal entries for 10000 closes"
        assert len({e["WS_CONN_ID"] for e in burst}) == 10000, "one entry per connection, none twice"
        metrics = urllib.request.urlopen(burst_status + "/metrics", timeout=30).read().decode()
        assert sum(float(v) for v in re.findall(r"^vigil_closes_total\{[^}]*\} (\S+)", metrics, re.M)) == 10000
    finally:
        burst_daemon.terminate()
        burst_daemon.wait(30)

    # journald stops draining (SIGSTOP) while 2,000 connections close: no event loop blocks on
    # the journal, /livez answers, every record is in /closes; the entries follow once it resumes.
    stuck_daemon = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                                     "--ping-interval", "0"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        stuck_ready = wait(lambda: [e for e in journal("SYSLOG_IDENTIFIER=vigild", f"_PID={stuck_daemon.pid}")
                                    if "vigild ready" in e["MESSAGE"]], "the third vigild's ready line")[0]
        stuck_ws = stuck_ready["MESSAGE"].split("ws=")[1].split(" ")[0]
        stuck_status = stuck_ready["MESSAGE"].split("status=")[1].split(" ")[0]
        load = subprocess.Popen([LOAD, "--url", stuck_ws, "-c", "2000", "--duration", "300s", "--no-close"],
                                stdout=subprocess.PIPE, text=True)
        assert json.loads(load.stdout.readline())["connections"] == 2000
        journald.send_signal(signal.SIGSTOP)
        try:
            load.kill()
            load.wait()
            started = time.monotonic()
            wait(lambda: get(stuck_status + "/status")["closes_total"] == 2000, "2000 closes with journald stopped", 30)
            for _ in range(5):
                probe = time.monotonic()
                assert urllib.request.urlopen(stuck_status + "/livez", timeout=2).read() == b"ok\n"
                assert time.monotonic() - probe < 1, "/livez answered within a second"
            print(json.dumps({"stuck_journal_closes_s": round(time.monotonic() - started, 2)}), file=sys.stderr)
        finally:
            journald.send_signal(signal.SIGCONT)
        entries_after = wait(lambda: (lambda e: e if len(e) >= 2000 else None)(
            journal(f"MESSAGE_ID={MESSAGE_ID}", f"_PID={stuck_daemon.pid}")), "the 2000 entries after journald resumed", 60)
        assert len(entries_after) == 2000
    finally:
        stuck_daemon.terminate()
        stuck_daemon.wait(30)

    # A proxied pair: one journal entry per leg, with the pair's fields.
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend.py")],
                               stdout=subprocess.PIPE, text=True)
    backend_port = int(backend.stdout.readline().split()[1])
    proxy_daemon = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--mode", "proxy",
                                     "--upstream", f"ws://127.0.0.1:{backend_port}/app"],
                                    stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        proxy_ready = wait(lambda: [e for e in journal("SYSLOG_IDENTIFIER=vigild", f"_PID={proxy_daemon.pid}")
                                    if "vigild ready" in e["MESSAGE"]], "the proxy's ready line")[0]
        host, port = proxy_ready["MESSAGE"].split("ws=ws://")[1].split("/")[0].split(":")
        asyncio.run(rows.ws_close_with(Endpoint(host, int(port)), "paired", 4000, "bye"))
        legs = wait(lambda: (lambda e: e if len(e) >= 2 else None)(
            journal(f"MESSAGE_ID={MESSAGE_ID}", f"_PID={proxy_daemon.pid}")), "both legs' entries")
        by_leg = {entry["WS_LEG"]: entry for entry in legs}
        assert set(by_leg) == {"client", "upstream"}, legs
        assert by_leg["client"]["WS_PAIR_ID"] == by_leg["upstream"]["WS_PAIR_ID"]
        assert by_leg["client"]["WS_UPSTREAM"] == by_leg["upstream"]["WS_UPSTREAM"] == f"ws://127.0.0.1:{backend_port}/app"
        assert (by_leg["upstream"]["WS_CLOSE_CAUSE"], by_leg["upstream"]["WS_PARTNER_CAUSE"],
                by_leg["upstream"]["WS_PARTNER_KIND"], by_leg["upstream"]["WS_CLOSE_CODE"]) == \
            ("partner_closed", "peer_close", "error", "4000")
        assert "WS_PARTNER_CAUSE" not in by_leg["client"]
        assert journal(f"MESSAGE_ID={MESSAGE_ID}", f"WS_PAIR_ID={by_leg['client']['WS_PAIR_ID']}", f"_PID={proxy_daemon.pid}").__len__() == 2
    finally:
        proxy_daemon.terminate()
        proxy_daemon.wait(10)
        backend.kill()
        backend.wait()

    # A monitor target whose service is killed: its close entry says outbound and names it.
    backend = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "backend.py")],
                               stdout=subprocess.PIPE, text=True)
    backend_port = int(backend.stdout.readline().split()[1])
    target_config = os.path.join(JOURNAL_DIR, "targets.yaml")
    with open(target_config, "w") as f:
        f.write(f"targets:\n  - name: feed\n    url: ws://127.0.0.1:{backend_port}/feed\n")
    monitor_daemon = subprocess.Popen([VIGILD, "--config", target_config, "--listen", "none", "--status-listen", "127.0.0.1:0"],
                                      stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait(lambda: [e for e in journal("SYSLOG_IDENTIFIER=vigild", f"_PID={monitor_daemon.pid}")
                      if e["MESSAGE"].startswith("target feed up")], "the target's up line")
        backend.kill()
        backend.wait()
        entry = wait(lambda: journal(f"MESSAGE_ID={MESSAGE_ID}", f"_PID={monitor_daemon.pid}", "WS_TARGET=feed"),
                     "the target's close entry")[0]
        assert (entry["WS_DIRECTION"], entry["WS_LEG"], entry["WS_TARGET"]) == ("outbound", "target", "feed"), entry
        assert entry["WS_CLOSE_KIND"] in ("eof", "abnormal") and entry["WS_PEER"] == f"127.0.0.1:{backend_port}", entry
        assert "(target feed) to" in entry["MESSAGE"]
        inbound = journal(f"MESSAGE_ID={MESSAGE_ID}", "WS_DIRECTION=inbound")
        assert inbound and all(e.get("WS_TARGET") is None for e in inbound)
    finally:
        monitor_daemon.terminate()
        monitor_daemon.wait(10)
        if backend.poll() is None:
            backend.kill()
            backend.wait()

    # journald goes away mid-run: vigild keeps serving, the registry stays complete, and the
    # entries journald cannot take go to stderr instead.
    journald.terminate()
    journald.wait(5)
    asyncio.run(rows.ws_close_with(endpoint, "after_journald", 1000, "still here"))
    rows.raw_eof(endpoint)
    document = wait(lambda: (lambda d: d if d["total"] == len(expected) + 2 else None)(get(status_url + "/closes")),
                    "the closes after journald stopped")
    assert {r["client"] for r in document["closes"]} >= {"after_journald", "eof"}
    metrics = urllib.request.urlopen(status_url + "/metrics", timeout=5).read().decode()
    assert f'vigil_connections_opened_total{{leg="client"}} {len(expected) + 2}' in metrics
    stderr.flush()
    fallback = open(stderr_path).read()
    assert "(client=after_journald) closed: normal (peer_close)" in fallback, fallback
    assert f"message_id={MESSAGE_ID}" in fallback
    print(json.dumps({"journal_entries": len(entries), "closes": document["total"]}))
finally:
    daemon.terminate()
    daemon.wait(10)
    if journald.poll() is None:
        journald.kill()
