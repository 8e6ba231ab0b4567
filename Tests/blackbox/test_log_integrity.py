"""What a peer controls must not forge or flood the log: close reasons and client names are
escaped and quoted in text and JSON lines alike, refused handshakes are logged up to a budget
with a summary for the rest, and ping payloads cannot be guessed."""

import json
import re
import socket
import struct
import threading
import time
import urllib.parse

from wsraw import RawPeer, handshake_request, read_http_response

FORGED_REASON = "ok\n<0>FORGED \x1b[31mred\x7f"


def close_with(daemon, client, reason):
    peer = RawPeer(daemon.port, "/ws?client=" + urllib.parse.quote(client))
    peer.send_frame(0x8, struct.pack("!H", 4000) + reason.encode())
    peer.read_until_close()
    peer.expect_eof()


def close_line(daemon, client_fragment):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in daemon.lines if "ws_close_reason=" in line and client_fragment in line]
        if lines:
            return lines
        time.sleep(0.01)
    raise AssertionError("no close line in:\n" + "\n".join(daemon.lines[-10:]))


def test_a_close_reason_cannot_start_a_line_or_reach_the_terminal_in_text_logs(vigild):
    daemon = vigild("--log-format", "text")
    close_with(daemon, "plain", "ok\n<0>FORGED")  # no space: it used to go out unquoted
    close_with(daemon, "forger", FORGED_REASON)
    assert 'ws_close_reason="ok\\n<0>FORGED"' in close_line(daemon, "ws_client=plain")[0]
    lines = close_line(daemon, "ws_client=forger")
    assert len(lines) == 1
    assert 'ws_close_reason="ok\\n<0>FORGED \\u001b[31mred\\u007f"' in lines[0]
    assert not any(line.startswith("<0>") or "FORGED" in line and "ws_close_reason" not in line for line in daemon.lines)
    assert not any("\x1b" in line or "\x7f" in line for line in daemon.lines), "no raw control character reaches stderr"


def test_a_client_name_cannot_pass_for_a_field(vigild):
    daemon = vigild("--log-format", "text")
    close_with(daemon, "kiosk ws_close_kind=normal", "bye")
    line = close_line(daemon, "ws_client=")[0]
    assert '(client="kiosk ws_close_kind=normal") closed: error (peer_close)' in line
    assert 'ws_client="kiosk ws_close_kind=normal"' in line
    # Read as a log parser would, quoted values taken whole: one ws_close_kind, the real one.
    fields = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)
    kinds = [value for key, value in fields if key == "ws_close_kind"]
    assert kinds == ["error"], fields


def test_json_lines_escape_every_control_character(vigild):
    daemon = vigild()  # the harness's JSON lines
    close_with(daemon, "forger", FORGED_REASON)
    entry = daemon.wait_for_log(lambda e: e.get("ws_client") == "forger" and "ws_close_reason" in e)
    assert entry["ws_close_reason"] == FORGED_REASON, "the JSON string decodes back to the exact reason"
    raw = [line for line in daemon.lines if '"ws_client":"forger"' in line and "ws_close_reason" in line]
    assert len(raw) == 1 and "\\u001b" in raw[0] and "\\u007f" in raw[0] and "\n" not in raw[0]


JUNK = b"\x16\x03\x01\x02\x00junk \x1b[31m\r\n\r\n"
FLOOD = 100_000


def send_junk(port, source, count, answers):
    """`count` connections from 127.0.0.`source`, each sending bytes that are not HTTP."""
    for _ in range(count):
        with socket.socket() as sock:
            sock.settimeout(10)
            sock.bind((f"127.0.0.{source}", 0))  # eight source addresses: no shortage of ports
            sock.connect(("127.0.0.1", port))
            sock.sendall(JUNK)
            answers.append(read_http_response(sock)[0])


def test_a_flood_of_junk_requests_is_a_summary_not_a_line_each(vigild):
    """100,000 connections sending junk (the issue's figure): each is refused with 400, at most
    20 refusals a second are logged one by one, and the rest are counted in summaries."""
    daemon = vigild()
    answers = []
    started = time.monotonic()
    workers = [threading.Thread(target=send_junk, args=(daemon.port, source, FLOOD // 8, answers))
               for source in range(1, 9)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    took = time.monotonic() - started
    time.sleep(1.3)  # the last second's summary
    entries = daemon.json_logs()
    one_by_one = [e for e in entries if e.get("message", "").startswith("rejected handshake: ")]
    summaries = [e for e in entries if "more rejected or timed-out handshakes not logged" in e.get("message", "")]
    suppressed = sum(int(e["suppressed"]) for e in summaries)
    print(f"{FLOOD} junk requests in {took:.1f} s: {len(entries)} log entries in all, {len(one_by_one)} one by one, "
          f"{len(summaries)} summaries")
    assert answers.count(400) == FLOOD
    assert len(one_by_one) <= 20 * (int(took) + 2)
    assert len(summaries) <= int(took) + 2, "one summary a second at most"
    assert len(one_by_one) + suppressed == FLOOD, "every refusal is either logged or counted in a summary"
    assert len(entries) < 25 * (int(took) + 2), "not an entry per request"
    assert all("\x1b" not in e.get("message", "") for e in one_by_one), "the junk is escaped"
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="bad_request"}'] == FLOOD


def test_pings_cannot_be_answered_blind(vigild):
    """A peer that never reads answers with the payloads a counter would give: not one of them is
    taken for a pong, and the connection ends as a pong timeout."""
    daemon = vigild("--ping-interval", "200ms", "--pong-timeout", "300ms")
    peer = RawPeer(daemon.port, "/ws?client=blind")
    started = time.monotonic()
    sequence = 0
    try:
        while time.monotonic() - started < 3:
            sequence += 1
            peer.send_frame(0xA, struct.pack("!Q", sequence))
            time.sleep(0.1)
    except OSError:
        pass  # vigild hung up on it
    record = daemon.wait_closes(1)[0]
    assert (record["cause"], record["client"]) == ("pong_timeout", "blind")
    assert record["last_rtt_ms"] is None, "no guessed pong counted as a round trip"
