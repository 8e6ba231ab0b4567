"""Paths no peer can reach from outside, driven in the real binary by a failpoint
(`VIGILD_FAILPOINTS`): a failure while setting up an upgraded connection's pipeline gives back
the connection slot and the registry entry, leaves no record and no ghost in /connections, and
in proxy mode closes the upstream leg already open for it (which keeps its own record)."""

import socket

from conftest import run_vigild
from test_proxy import Backend
from wsraw import handshake_request, read_http_response


def upgrade_then_wait_for_the_end(port):
    """Sends a handshake; returns the status and what the connection did afterwards."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(handshake_request())
        status, _, rest = read_http_response(sock)
        sock.settimeout(5)
        try:
            after = rest + sock.recv(1024)
        except ConnectionResetError:
            after = b"reset"
        return status, after


def assert_no_ghost(daemon, attempts):
    status = daemon.get_json("/status")
    assert daemon.get_json("/connections")["connections"] == [], "no ghost entry"
    assert status["connections"] == 0
    assert status["closes_total"] == 0, "never supervised: no record"
    assert daemon.metrics()['vigil_handshakes_rejected_total{reason="setup_failed"}'] == attempts
    failures = [line for line in daemon.lines if "cannot set up the upgraded connection" in line]
    assert len(failures) == attempts and "failpoint upgrade_pipeline" in failures[0], daemon.lines[-5:]


def test_a_failed_pipeline_setup_gives_back_the_slot_and_leaves_no_ghost(vigild):
    """With max_connections 1, three upgrades in a row whose pipeline setup fails: each is
    closed at once without a close frame (it was never a supervised connection), and each gets
    the one slot (a slot kept would make the second a 503)."""
    daemon = vigild("--max-connections", "1", env={"VIGILD_FAILPOINTS": "upgrade_pipeline"})
    assert any("failpoints switched on, for tests only: upgrade_pipeline" in line for line in daemon.lines)
    for _ in range(3):
        status, after = upgrade_then_wait_for_the_end(daemon.port)
        assert status == 101, "the failure comes after the 101 is on its way"
        assert after in (b"", b"reset"), f"closed without frames: {after!r}"
    assert_no_ghost(daemon, attempts=3)


def test_in_proxy_mode_the_upstream_leg_is_closed_and_keeps_its_record(vigild):
    backend = Backend()
    try:
        daemon = vigild("--mode", "proxy", "--upstream", backend.url(), "--max-connections", "1",
                        env={"VIGILD_FAILPOINTS": "upgrade_pipeline"})
        status, after = upgrade_then_wait_for_the_end(daemon.port)
        assert status == 101 and after in (b"", b"reset")
        assert backend.wait_close() == "closed 1001 the client leg could not be set up"
        records = daemon.wait_closes(1)
        assert [(r["leg"], r["kind"], r["cause"]) for r in records] == [("upstream", "going_away", "partner_closed")]
        assert daemon.get_json("/connections")["connections"] == []
        assert daemon.get_json("/status")["connections"] == 0
        assert daemon.metrics()['vigil_handshakes_rejected_total{reason="setup_failed"}'] == 1
    finally:
        backend.stop()


def test_an_unknown_failpoint_stops_the_start_naming_it():
    result = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                        env={"VIGILD_FAILPOINTS": "upgrade_pipeline,nope\x1b"})
    assert result.returncode == 2
    assert 'VIGILD_FAILPOINTS: unknown failpoint "nope\\u{1b}"; known: upgrade_pipeline' in result.stderr
