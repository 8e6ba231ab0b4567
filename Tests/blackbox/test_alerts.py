"""monitoring/vigil-alerts.yml: checked and unit-tested with promtool, and evaluated by a real
Prometheus (Debian's package) scraping a real vigild on loopback."""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request

from conftest import ROOT
from test_proxy import Backend
from wsraw import RawPeer, handshake_request, read_http_response

MONITORING = os.path.join(ROOT, "monitoring")


def promtool(*args):
    assert shutil.which("promtool"), "make test installs prometheus (it ships promtool)"
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=MONITORING)


def test_the_rules_check_and_pass_their_unit_tests():
    checked = promtool("check", "rules", "vigil-alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    tested = promtool("test", "rules", "vigil-alerts.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_after_upgrade(port, client):
    """A WebSocket client that upgrades and then resets the connection: abnormal/reset."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(handshake_request(f"/ws?client={client}"))
    status, _, _ = read_http_response(sock)
    assert status == 101
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_real_prometheus_raises_the_alerts_from_a_real_vigild(vigild, tmp_path):
    assert shutil.which("prometheus"), "make test installs prometheus"
    service = Backend()
    config = tmp_path / "vigil.yaml"
    config.write_text(f"targets:\n  - name: billing\n    url: ws://127.0.0.1:{service.port}/forbidden\n    critical: true\n")
    daemon = vigild("--config", str(config), "--max-connections", "4")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {os.path.join(MONITORING, "vigil-alerts.yml")}
scrape_configs:
  - job_name: vigild
    static_configs:
      - targets: ["{daemon.status_url.removeprefix("http://")}"]
""")
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path):
        with urllib.request.urlopen(api + path, timeout=5) as response:
            return json.loads(response.read())["data"]

    def alerts():
        return {(a["labels"]["alertname"], a["state"]): a for a in get("/alerts")["alerts"]}

    def wait_for(predicate, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{what}; alerts now {alerts()}\n" + open(tmp_path / "prometheus.log").read()[-2000:])

    try:
        wait_for(lambda: any(r["value"][1] == "1" for r in get("/query?query=up%7Bjob%3D%22vigild%22%7D")["result"]),
                 "Prometheus scraping vigild")
        # The critical target refuses with 403: pending at once (for: 1m).
        target = wait_for(lambda: alerts().get(("VigilCriticalTargetDown", "pending")), "VigilCriticalTargetDown pending")
        assert target["labels"]["target"] == "billing" and target["labels"]["severity"] == "critical"
        assert ("VigilAbnormalClosesHigh", "pending") not in alerts(), "no abnormal closes yet"
        # 40 clients reset their connections after the upgrade: abnormal/reset, all of the closes.
        for i in range(40):
            reset_after_upgrade(daemon.port, f"r{i}")
            time.sleep(0.05)
        assert daemon.wait_closes(40, query="?kind=abnormal")
        abnormal = wait_for(lambda: alerts().get(("VigilAbnormalClosesHigh", "pending")), "VigilAbnormalClosesHigh pending")
        assert abnormal["labels"]["instance"] == daemon.status_url.removeprefix("http://")
        assert "Most WebSocket closes" in abnormal["annotations"]["summary"]
        assert ("VigildDown", "pending") not in alerts() and ("VigildDown", "firing") not in alerts()
        # Four clients held at max_connections 4: client legs over 90 % of the limit. The
        # expression divides vigild's own series, vigil_connections_active{leg="client"} by
        # vigil_connections_max, as Prometheus scraped them.
        assert ("VigilNearMaxConnections", "pending") not in alerts()
        held = [RawPeer(daemon.port, f"/ws?client=held{i}") for i in range(4)]
        near = wait_for(lambda: alerts().get(("VigilNearMaxConnections", "pending")), "VigilNearMaxConnections pending")
        assert near["labels"]["instance"] == daemon.status_url.removeprefix("http://")
        assert "100% of max_connections" in near["annotations"]["summary"]
        for peer in held:
            peer.close()
        # vigild stops: VigildDown pending once a scrape fails.
        daemon.stop()
        wait_for(lambda: alerts().get(("VigildDown", "pending")), "VigildDown pending")
    finally:
        prometheus.send_signal(signal.SIGTERM)
        try:
            prometheus.wait(10)
        except subprocess.TimeoutExpired:
            prometheus.kill()
        service.stop()
