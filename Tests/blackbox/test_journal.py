"""A real journald, isolated in a private mount namespace: one entry per close with the
documented MESSAGE_ID and WS_* fields, also for 10,000 connections dropped at once, and no lost
close when journald goes away."""

import os
import subprocess
import sys

from conftest import ROOT, VIGILD
from systemd_support import require_root

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_close_is_one_journal_entry_and_survives_journald_stopping(tmp_path):
    require_root()
    journal_dir = tmp_path / "log"
    journal_dir.mkdir()
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable,
         os.path.join(HERE, "journal_scenario.py"), VIGILD, str(journal_dir),
         os.path.join(ROOT, ".build", "debug", "vigil-load")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # The journal files outlive the namespace: readable from outside too.
    machine_journals = list((journal_dir / "journal").iterdir())
    assert machine_journals, "journald stored nothing"
    out = subprocess.run(["journalctl", "--directory", str(machine_journals[0]), "-o", "json",
                          "MESSAGE_ID=5bfe117f0f644f8c8afabe45870ad1cb"], capture_output=True, text=True).stdout
    assert len(out.splitlines()) == 11 + 10000 + 2000 + 2 + 1  # the close table, two bursts, a proxied pair, a target
