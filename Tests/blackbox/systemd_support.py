"""Shared helpers for tests that need root, namespaces or a service manager."""

import json
import os
import time

import pytest


def require_root():
    """These tests need root (namespaces, mounts, nspawn). CI is root; under CI=true a missing
    privilege is a failure, never a skip."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("this test needs root, and CI=true forbids skipping it")
    pytest.skip("needs root (runs in CI)")


class Endpoint:
    """The little the close-table drivers need of a daemon: its port and WebSocket URL."""

    def __init__(self, host, port, path="/ws"):
        self.host, self.port, self.path = host, port, path
        self.ws_url = f"ws://{host}:{port}{path}"

    def ws(self, query=""):
        return self.ws_url + query


def wait_until(predicate, what, timeout=30):
    """The first truthy value of `predicate()`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def journal_entries(output):
    """Entries of `journalctl -o json` output."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]
