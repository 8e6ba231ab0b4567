"""Monitor targets against a real remote service: backend.py (Python websockets) in its own
process, killed, frozen, muted, refusing, over TLS with a CA made here; vigild with
`listen: none`, a pure monitor, read through /targets, /closes, /metrics and its log."""

import json
import os
import re
import signal
import socket
import struct
import time

import pytest

from test_proxy import Backend, RawWebSocketUpstream, make_certificates


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def monitor(vigild, tmp_path, targets, *flags, extra=""):
    """A pure monitor (no WebSocket listener) of `targets` (YAML list items, indented)."""
    config = tmp_path / "vigil.yaml"
    config.write_text(extra + "targets:\n" + targets)
    return vigild("--config", str(config), "--listen", "none", *flags), config


def target(daemon, name):
    return daemon.get_json(f"/targets/{name}")


def wait_target(daemon, name, predicate, what, timeout=10):
    """The target's /targets entry once `predicate` holds (404 counts as not yet: a reload)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        status, _, body = daemon.get(f"/targets/{name}")
        state = json.loads(body) if status == 200 else None
        if state is not None and predicate(state):
            return state
        time.sleep(0.01)
    raise AssertionError(f"target {name}: {what}; now {json.dumps(state, indent=1)}")


def seconds(text):
    """ValueParsers' rendering of a duration: 761ms, 12s, 1m, 1m30s."""
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def waits(daemon, name):
    """Every `next attempt in X (rule)` the log gave for a target, as (seconds, rule)."""
    found = []
    for entry in daemon.json_logs():
        match = re.search(r"next attempt in (\S+) \((\w+)\)", entry.get("message", ""))
        if match and entry.get("ws_target") == name:
            found.append((seconds(match.group(1)), match.group(2)))
    return found


def timestamp(text):
    import datetime
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def restart_on(port, tls=None, attempts=50):
    """backend.py again on the same port (the old socket may linger a moment)."""
    for _ in range(attempts):
        try:
            return Backend.on_port(port, tls)
        except RuntimeError:
            time.sleep(0.1)
    raise AssertionError(f"could not restart the backend on port {port}")


def test_a_killed_service_is_down_at_once_then_reconnected_within_the_backoff(vigild, tmp_path):
    port = free_port()
    service = Backend.on_port(port)
    try:
        # reconnect_max 2 s keeps the measured waits short: min(2 s, 5 s × 2^(n−1)) each.
        daemon, _ = monitor(vigild, tmp_path, f"  - name: feed\n    url: ws://127.0.0.1:{port}/feed\n    ping_interval: 1s\n",
                            extra="reconnect_max: 2s\n")
        first = wait_target(daemon, "feed", lambda t: t["state"] == "up", "up")
        assert first["connection"]["peer"] == f"127.0.0.1:{port}" and first["reconnects"] == 0
        assert daemon.metrics()['vigil_target_up{target="feed",critical="false"}'] == 1
        service.proc.kill()
        service.proc.wait()
        killed = time.monotonic()
        # Where the service was, a listener that takes each dial and hangs up at once (a failed
        # dial: "closed during the handshake"), noting when each arrived: the waits measured.
        listener = socket.create_server(("127.0.0.1", port))
        down = wait_target(daemon, "feed", lambda t: t["state"] == "down", "down after the SIGKILL", timeout=3)
        assert time.monotonic() - killed < 1, "down at once, not after a heartbeat"
        close = down["last_close"]
        assert (close["kind"], close["cause"]) in [("eof", "eof"), ("abnormal", "reset")], close
        assert (close["direction"], close["target"], close["leg"]) == ("outbound", "feed", "target")
        assert daemon.metrics()['vigil_target_up{target="feed",critical="false"}'] == 0
        arrivals = [killed]
        listener.settimeout(10)
        with listener:
            for _ in range(3):
                sock, _ = listener.accept()
                arrivals.append(time.monotonic())
                sock.close()
        measured = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
        service = restart_on(port)
        back = wait_target(daemon, "feed", lambda t: t["state"] == "up", "up again", timeout=20)
        assert back["reconnects"] >= 1 and back["last_close"]["id"] == close["id"]
        logged = waits(daemon, "feed")
        print("waits after the kill, measured:", [round(m, 3) for m in measured], "logged:", logged)
        assert [rule for _, rule in logged[:3]] == ["first", "exponential", "exponential"], logged
        for n, (wait, (said, _)) in enumerate(zip(measured, logged), start=1):
            assert 0 <= wait <= 2 + 0.25, f"wait {n}: {wait:.3f} s, over min(reconnect_max 2 s, 5 s × 2^(n−1))"
            assert abs(wait - said) < 0.25, f"wait {n}: {wait:.3f} s measured, {said} s logged"
        # The record is the same everywhere: /closes?target=, the metrics, the log.
        record = daemon.closes("?target=feed")["closes"][0]
        assert record["id"] == close["id"] and daemon.closes("?target=nothing")["total"] == 0
        kind, cause = close["kind"], close["cause"]
        assert daemon.metrics()[f'vigil_target_closes_total{{target="feed",kind="{kind}",cause="{cause}"}}'] == 1
        line = daemon.wait_for_log(lambda e: e.get("message_id") and e.get("ws_conn_id") == str(close["id"]))
        assert (line["ws_direction"], line["ws_target"]) == ("outbound", "feed")
        assert f"(target feed) to 127.0.0.1:{port} closed: {kind} ({cause})" in line["message"]
    finally:
        service.stop()


def test_a_frozen_service_is_closed_as_pong_timeout_within_p_plus_t(vigild, tmp_path):
    service = Backend()
    try:
        daemon, _ = monitor(
            vigild, tmp_path,
            f"  - name: frozen\n    url: ws://127.0.0.1:{service.port}/\n    ping_interval: 500ms\n    pong_timeout: 500ms\n")
        wait_target(daemon, "frozen", lambda t: t["state"] == "up" and t["connection"]["pongs_received"] >= 1, "pinged")
        service.proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        down = wait_target(daemon, "frozen", lambda t: t["state"] == "down", "down", timeout=5)
        close = down["last_close"]
        assert (close["kind"], close["cause"], close["initiator"]) == ("abnormal", "pong_timeout", "vigild"), close
        after = timestamp(close["closed_at"]) - stopped
        print(f"frozen service: closed {after * 1000:.0f} ms after the SIGSTOP (P + T = 1000 ms)")
        assert after <= 1.1, f"closed {after:.3f} s after the freeze; P + T + 100 ms is 1.1 s"
    finally:
        service.stop()


def test_a_service_that_answers_pings_but_not_requests_is_closed_as_reply_timeout(vigild, tmp_path):
    service = Backend()
    try:
        daemon, _ = monitor(vigild, tmp_path, f"""  - name: echoing
    url: ws://127.0.0.1:{service.port}/echo
    command:
      every: 200ms
      message: '{{"requestID": {{{{id}}}}, "command": "status"}}'
      reply_within: 300ms
  - name: stuck
    url: ws://127.0.0.1:{service.port}/mute
    ping_interval: 100ms
    command:
      every: 200ms
      message: '{{"requestID": {{{{id}}}}, "command": "status"}}'
      reply_within: 300ms
""")
        down = wait_target(daemon, "stuck", lambda t: t["last_close"] is not None, "closed", timeout=5)
        close = down["last_close"]
        assert (close["kind"], close["cause"], close["initiator"]) == ("abnormal", "reply_timeout", "vigild"), close
        assert close["last_rtt_ms"] is not None, "its pings were answered all along"
        assert down["command_timeouts"] >= 3 and down["reply_ms"] is None
        echoing = wait_target(daemon, "echoing", lambda t: t["reply_ms"] is not None, "a reply")
        assert echoing["state"] == "up" and echoing["command_timeouts"] == 0 and echoing["last_close"] is None
        samples = daemon.metrics()
        assert samples['vigil_target_reply_seconds_count{target="echoing"}'] >= 1
        assert samples['vigil_target_closes_total{target="stuck",kind="abnormal",cause="reply_timeout"}'] >= 1
        assert daemon.get_json("/status")["causes"]["reply_timeout"] >= 1
    finally:
        service.stop()


def test_dial_failures_by_phase_and_what_a_target_sends(vigild, tmp_path):
    """DNS and TCP failures are reported and counted by phase, with consecutive_failures; a
    target that connects sends its headers (inline and from headers_file) and subprotocol
    offer, is pinged (vigil_target_rtt_seconds), counts result="ok", and goes backing_off
    after a clean close, then connecting again."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    raw = RawWebSocketUpstream()
    secrets = tmp_path / "feed.headers"
    secrets.write_text("# a comment\n\nX-From-File: yes\n")
    try:
        daemon, _ = monitor(vigild, tmp_path, f"""  - name: nowhere
    url: ws://no-such-host.invalid:80/
  - name: refused
    url: ws://127.0.0.1:{dead_port}/
  - name: feed
    url: ws://127.0.0.1:{raw.port}/feed?x=1
    headers: {{Authorization: "Bearer t0ken"}}
    headers_file: {secrets}
    subprotocol: v2.feed
    ping_interval: 200ms
""")
        nowhere = wait_target(daemon, "nowhere", lambda t: t["last_dial_error"] is not None, "a dial error")
        assert (nowhere["state"], nowhere["last_dial_error"]["phase"]) == ("down", "dns"), nowhere
        assert "cannot resolve no-such-host.invalid" in nowhere["last_dial_error"]["error"], nowhere
        refused = wait_target(daemon, "refused", lambda t: t["last_dial_error"] is not None, "a dial error")
        assert refused["last_dial_error"]["phase"] == "tcp" and "Connection refused" in refused["last_dial_error"]["error"]
        # Its waits are random from 0 s, so it may have failed again by now: the first one from the log.
        assert refused["consecutive_failures"] >= 1, refused
        first_wait = daemon.wait_for_log(lambda e: e.get("ws_target") == "refused" and "next attempt in" in e.get("message", ""))
        assert "(first)" in first_wait["message"], first_wait
        assert raw.accepted.wait(10)
        for line in ("GET /feed?x=1 HTTP/1.1", "Authorization: Bearer t0ken", "X-From-File: yes",
                     "Sec-WebSocket-Protocol: v2.feed"):
            assert line in raw.head.split("\r\n"), (line, raw.head)
        feed = wait_target(daemon, "feed", lambda t: t["state"] == "up", "up")
        # vigild's pings arrive on the wire; answered, they are the target's round trips.
        for _ in range(3):
            opcode, payload, masked = raw.read_frame()
            assert opcode == 0x9 and masked
            raw.send(0xA, payload)
        up = wait_target(daemon, "feed", lambda t: t["connection"]["pongs_received"] >= 3, "three pongs")
        assert up["uptime_ratio_1h"] > 0 and up["consecutive_failures"] == 0
        metrics = daemon.metrics()
        assert metrics['vigil_target_rtt_seconds_count{target="feed"}'] >= 3
        assert metrics['vigil_target_connect_attempts_total{target="feed",result="ok"}'] == 1
        assert metrics['vigil_target_connect_attempts_total{target="nowhere",result="dns"}'] >= 1
        assert metrics['vigil_target_connect_attempts_total{target="refused",result="tcp"}'] >= 1
        # A clean close by the server: backing_off, not down.
        raw.send(0x8, struct.pack("!H", 1000) + b"bye")
        while raw.read_frame()[0] != 0x8:
            pass
        raw.sock.close()
        after = wait_target(daemon, "feed", lambda t: t["state"] != "up", "the close seen")
        assert after["state"] == "backing_off" and after["last_close"]["kind"] == "normal", after
    finally:
        raw.close()


def test_close_codes_choose_the_wait_before_the_next_dial(vigild, tmp_path):
    """The server's close code, end to end: 1008 (policy) waits reconnect_max, 1013 (try again
    later) at least 5 s, and an unexplained end (1011) the random first wait of 0 to 5 s. The
    backend closes with the code its `close CODE REASON` command names, sent as the target's
    application round trip."""
    service = Backend()

    def closing(name, code):
        return (f"  - name: {name}\n    url: ws://127.0.0.1:{service.port}/{name}\n    command:\n"
                f"      every: 300ms\n      message: 'close {code} {name} {{{{id}}}}'\n      reply_within: 5s\n")

    try:
        daemon, _ = monitor(vigild, tmp_path, closing("policy", 1008) + closing("later", 1013) + closing("crash", 1011),
                            extra="reconnect_max: 45s\n")
        delays = {}
        for name, rule in (("policy", "policy"), ("later", "server_busy")):  # waits of 45 s and 5 s: one close each
            down = wait_target(daemon, name, lambda t: t["last_close"] is not None and t["next_attempt_at"], "closed")
            assert down["next_attempt_rule"] == rule, down
            record = daemon.wait_closes(1, query=f"?target={name}")[0]
            delays[name] = timestamp(down["next_attempt_at"]) - timestamp(record["closed_at"])
        # crash's first wait is random from 0 s, so it may have closed again already: its first, from the log.
        daemon.wait_for_log(lambda e: e.get("ws_target") == "crash" and "next attempt in" in e.get("message", ""))
        delays["crash"], crash_rule = waits(daemon, "crash")[0]
        print("waits after the close:", {k: round(v, 3) for k, v in delays.items()})
        assert abs(delays["policy"] - 45) < 0.1, "reconnect_max"
        assert 5 - 0.1 <= delays["later"] <= 5 + 0.1, "1013: as a first failure (0 to 5 s), but never less than 5 s"
        assert crash_rule == "first" and 0 <= delays["crash"] <= 5, "the first failure: random, 0 to 5 s"
    finally:
        service.stop()


def test_a_403_is_down_with_the_status_in_the_dial_error_and_waits_the_maximum(vigild, tmp_path):
    service = Backend()
    try:
        daemon, _ = monitor(
            vigild, tmp_path,
            f"  - name: locked\n    url: ws://127.0.0.1:{service.port}/forbidden\n    critical: true\n"
            f"  - name: busy\n    url: ws://127.0.0.1:{service.port}/busy\n")
        locked = wait_target(daemon, "locked", lambda t: t["last_dial_error"] is not None, "a dial error")
        error = locked["last_dial_error"]
        assert (locked["state"], error["phase"], error["http_status"]) == ("down", "http", 403), locked
        assert "HTTP 403" in error["error"]
        assert locked["next_attempt_rule"] == "policy"
        wait = timestamp(locked["next_attempt_at"]) - timestamp(locked["since"])
        assert abs(wait - 60) < 0.05, f"the maximum (reconnect_max 60 s), not {wait:.3f} s"
        busy = wait_target(daemon, "busy", lambda t: t["last_dial_error"] is not None, "a dial error")
        assert (busy["last_dial_error"]["http_status"], busy["next_attempt_rule"]) == (503, "retry_after")
        assert abs(timestamp(busy["next_attempt_at"]) - timestamp(busy["since"]) - 7) < 0.05, "its Retry-After: 7"
        assert daemon.metrics()['vigil_target_connect_attempts_total{target="locked",result="http"}'] == 1
        status, _, body = daemon.get("/health")
        health = json.loads(body)
        assert status == 503 and health["checks"]["targets:up"][0]["status"] == "fail", health
        assert "locked (critical)" in health["checks"]["targets:up"][0]["output"]
    finally:
        service.stop()


def test_tls_errors_name_the_certificate_problem_and_the_right_ca_connects(vigild, tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_certificates(tmp_path / "other")
    service = Backend(tls=[str(cert), str(key)])
    try:
        daemon, _ = monitor(vigild, tmp_path, f"""  - name: untrusted
    url: wss://localhost:{service.port}/secure
  - name: trusted
    url: wss://localhost:{service.port}/secure
    ca_file: {ca}
  - name: wrong-name
    url: wss://127.0.0.1:{service.port}/secure
    ca_file: {ca}
  - name: other-ca
    url: wss://localhost:{service.port}/secure
    ca_file: {other_ca}
""")
        untrusted = wait_target(daemon, "untrusted", lambda t: t["last_dial_error"] is not None, "a dial error")
        error = untrusted["last_dial_error"]
        assert error["phase"] == "tls" and error["error"] == \
            "TLS handshake failed: the certificate for localhost is not signed by a CA trusted here " \
            "(the system's trust store)", error
        trusted = wait_target(daemon, "trusted", lambda t: t["state"] == "up", "up with its CA")
        assert trusted["last_dial_error"] is None
        assert "sni localhost" in service.lines, "SNI names the host dialed"
        wrong = wait_target(daemon, "wrong-name", lambda t: t["last_dial_error"] is not None, "a dial error")
        assert wrong["last_dial_error"]["phase"] == "tls", "hostname verification is on: the certificate is for localhost"
        assert wrong["last_dial_error"]["error"] == \
            "TLS handshake failed: the certificate is for localhost, not 127.0.0.1 (hostname verification)"
        assert "sni none" in service.lines, "no SNI for an address (RFC 6066 allows host names only)"
        other = wait_target(daemon, "other-ca", lambda t: t["last_dial_error"] is not None, "a dial error")
        assert other["state"] != "up" and other["last_dial_error"]["phase"] == "tls", \
            "a ca_file that did not sign the server's certificate is no trust at all"
        assert "not signed by a CA trusted here (the system's trust store and the configured CA file)" in \
            other["last_dial_error"]["error"], other
    finally:
        service.stop()


def test_two_hundred_targets_held_for_a_minute_without_a_spurious_reconnect(vigild, tmp_path):
    service = Backend()
    try:
        targets = "".join(
            f"  - name: t{i:03d}\n    url: ws://127.0.0.1:{service.port}/t{i}\n    ping_interval: 2s\n" for i in range(200))
        daemon, _ = monitor(vigild, tmp_path, targets)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = daemon.get_json("/targets")["targets"]
            if all(t["state"] == "up" for t in states):
                break
            time.sleep(0.2)
        assert all(t["state"] == "up" for t in states), [t["name"] for t in states if t["state"] != "up"]
        time.sleep(60)
        states = daemon.get_json("/targets")["targets"]
        assert len(states) == 200
        assert [t["name"] for t in states if t["state"] != "up" or t["reconnects"] or t["last_close"]] == []
        assert all(t["connection"]["pongs_received"] >= 25 for t in states), "pinged every 2 s all along"
        assert daemon.get_json("/status")["closes_total"] == 0
        assert daemon.get_json("/health")["checks"]["targets:up"][0]["observedValue"] == 200
    finally:
        service.stop()


def test_a_reload_adds_and_removes_targets_and_leaves_the_others_alone(vigild, tmp_path):
    service = Backend()
    try:
        def entry(name):
            return f"  - name: {name}\n    url: ws://127.0.0.1:{service.port}/{name}\n"

        daemon, config = monitor(vigild, tmp_path, entry("a") + entry("b") + entry("d"))
        a = wait_target(daemon, "a", lambda t: t["state"] == "up", "up")
        b = wait_target(daemon, "b", lambda t: t["state"] == "up", "up")
        d = wait_target(daemon, "d", lambda t: t["state"] == "up", "up")
        moved = f"  - name: d\n    url: ws://127.0.0.1:{service.port}/d-moved\n"
        config.write_text("targets:\n" + entry("b") + entry("c") + moved)
        daemon.proc.send_signal(signal.SIGHUP)
        c = wait_target(daemon, "c", lambda t: t["state"] == "up", "the new target up")
        reloaded = daemon.wait_for_log(lambda e: e.get("message", "").startswith("configuration reloaded"))
        assert "targets: added c; removed a; changed d" in reloaded["message"], reloaded
        assert daemon.get("/targets/a")[0] == 404
        assert [t["name"] for t in daemon.get_json("/targets")["targets"]] == ["b", "c", "d"]
        # A changed target is redialed with its new settings: a new connection to the new URL.
        d2 = wait_target(daemon, "d", lambda t: t["state"] == "up" and t["connection"]["id"] != d["connection"]["id"],
                         "d up again on its new URL")
        assert d2["url"].endswith("/d-moved"), d2
        old_d = daemon.wait_closes(1, query="?target=d")[0]
        assert old_d["id"] == d["connection"]["id"] and old_d["path"] == "/d", old_d
        still = target(daemon, "b")
        assert still["connection"]["id"] == b["connection"]["id"] and still["reconnects"] == 0, "b was not touched"
        removed = daemon.wait_closes(1, query="?target=a")[0]
        assert removed["id"] == a["connection"]["id"]
        assert (removed["kind"], removed["code"], removed["cause"], removed["initiator"]) == \
            ("going_away", 1001, "shutdown", "vigild"), removed
        assert not [name for name in daemon.metrics() if 'target="a"' in name], "a removed target takes its series with it"
        assert c["connection"]["id"] not in (a["connection"]["id"], b["connection"]["id"])
    finally:
        service.stop()


def test_targets_are_checked_at_start_up(tmp_path):
    from conftest import run_vigild
    config = tmp_path / "vigil.yaml"
    config.write_text("targets:\n  - name: a\n    url: ws://127.0.0.1:9/\n    ping_intervall: 5s\n")
    result = run_vigild("--config", str(config), "--listen", "none", "--status-listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "target a (targets[0] in config file" in result.stderr and "unknown key ping_intervall" in result.stderr


def test_a_target_offers_deflate_and_fails_the_dial_on_an_answer_it_cannot_accept(vigild, tmp_path):
    """Targets offer permessage-deflate (`compression`, on by default). Python websockets, which
    accepts it, gives an agreement the target's connection reports; a server answering with a
    window of 16 bits, which does not exist, fails the dial in the handshake phase with an error
    naming the parameter (RFC 7692 §5), and the target is down, not connected to a stream it
    could not read."""
    service = Backend(compression=True)
    bad = RawWebSocketUpstream(extensions="permessage-deflate; server_max_window_bits=16")
    try:
        daemon, _ = monitor(vigild, tmp_path, f"""  - name: feed
    url: ws://127.0.0.1:{service.port}/feed
  - name: odd
    url: ws://127.0.0.1:{bad.port}/odd
""")
        feed = wait_target(daemon, "feed", lambda t: t["state"] == "up", "up")
        assert feed["connection"]["compression"].startswith("permessage-deflate"), feed
        odd = wait_target(daemon, "odd", lambda t: t["last_dial_error"] is not None, "a dial error")
        offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; client_no_context_takeover"
        assert offer in bad.head.split("\r\n"), bad.head
        error = odd["last_dial_error"]
        assert error["phase"] == "handshake" and "server_max_window_bits=16: window bits are 8 to 15" in error["error"], error
        assert odd["state"] == "down", odd
    finally:
        bad.close()
        service.stop()
