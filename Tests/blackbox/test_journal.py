"""A real journald, isolated in a private mount namespace: one entry per close with the
documented MESSAGE_ID and WS_* fields, also for 10,000 connections dropped at once, and no lost
close when journald goes away."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, VIGILD
from systemd_support import require_root

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """journal_scenario.py's run: its output and the journal files it left (outside the namespace)."""
    require_root()
    journal_dir = tmp_path_factory.mktemp("journal") / "log"
    journal_dir.mkdir()
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable,
         os.path.join(HERE, "journal_scenario.py"), VIGILD, str(journal_dir),
         os.path.join(ROOT, ".build", "debug", "vigil-load")],
        capture_output=True, text=True, timeout=300)
    return result, journal_dir


def test_every_close_is_one_journal_entry_and_survives_journald_stopping(scenario):
    result, journal_dir = scenario
    assert result.returncode == 0, result.stdout + result.stderr
    # The journal files outlive the namespace: readable from outside too.
    machine_journals = list((journal_dir / "journal").iterdir())
    assert machine_journals, "journald stored nothing"
    out = subprocess.run(["journalctl", "--directory", str(machine_journals[0]), "-o", "json",
                          "MESSAGE_ID=5bfe117f0f644f8c8afabe45870ad1cb"], capture_output=True, text=True).stdout
    assert len(out.splitlines()) == 11 + 10000 + 2000 + 2 + 1  # the close table, two bursts, a proxied pair, a target


def test_the_records_forward_to_another_host_with_every_field(scenario, tmp_path):
    """The fleet recipe's path, with real parts: systemd-journal-upload sends the journal to
    systemd-journal-remote on loopback, and the receiving side's journal answers the same
    queries with the same WS_* fields."""
    result, journal_dir = scenario
    assert result.returncode == 0, result.stdout + result.stderr
    remote = shutil.which("systemd-journal-remote", path="/lib/systemd:/usr/lib/systemd")
    upload = shutil.which("systemd-journal-upload", path="/lib/systemd:/usr/lib/systemd")
    assert remote and upload, "make test installs systemd-journal-remote"
    source = next((journal_dir / "journal").iterdir())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    received = tmp_path / "remote"
    received.mkdir()
    receiver = subprocess.Popen([remote, f"--listen-http=127.0.0.1:{port}", f"--output={received}/remote.journal",
                                 "--split-mode=none"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        sent = subprocess.run([upload, f"--url=http://127.0.0.1:{port}", f"--directory={source}", "--follow=no"],
                              capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
    finally:
        receiver.terminate()
        receiver.wait(10)

    def query(directory, *matches):
        out = subprocess.run(["journalctl", "--directory", str(directory), "-o", "json", *matches],
                             capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines()]

    local = query(source, "MESSAGE_ID=5bfe117f0f644f8c8afabe45870ad1cb", "WS_CLOSE_KIND=abnormal")
    forwarded = query(received, "MESSAGE_ID=5bfe117f0f644f8c8afabe45870ad1cb", "WS_CLOSE_KIND=abnormal")
    assert local and len(forwarded) == len(local), (len(local), len(forwarded))
    fields = lambda entry: {k: v for k, v in entry.items() if k.startswith("WS_")}
    same = lambda entries: sorted(json.dumps(fields(e), sort_keys=True) for e in entries)
    assert same(forwarded) == same(local), "every WS_* field arrives as it was written"
    assert all({"WS_CLOSE_KIND", "WS_CLOSE_CAUSE", "WS_CLOSE_CODE", "WS_CONN_ID", "WS_PEER"} <= set(entry) for entry in forwarded)
    targets = query(received, "MESSAGE_ID=5bfe117f0f644f8c8afabe45870ad1cb", "WS_TARGET=feed")
    assert targets and targets[0]["WS_DIRECTION"] == "outbound"
