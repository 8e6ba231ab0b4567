"""The real client behind a load balancer, with the real balancers from Debian in front of
vigild: HAProxy sending PROXY protocol v1 and v2 (and its health checks), nginx's stream
module sending PROXY v1, and nginx's HTTP proxy adding X-Forwarded-For. Clients connect from
127.0.0.2 and 127.0.0.3, the balancers from 127.0.0.1: the records, the per-IP limit and the
chain sent upstream must name the client. An untrusted peer's PROXY header, Forwarded and
X-Forwarded-For are not believed."""

import asyncio
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from conftest import ROOT, free_port
from test_proxy import Backend
from wsraw import handshake_request, read_http_response

DEPLOY = os.path.join(ROOT, "deploy")
HEADERS = 'vigil_proxy_protocol_headers_total{{result="{}"}}'


def executable(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert path, f"{name} is missing: make test installs it"
    return path


class Balancer:
    """HAProxy or nginx from a deploy/ recipe, its placeholders filled in, in the foreground."""

    def __init__(self, recipe, vigild_port, tmp_path, **values):
        self.port = free_port()
        text = open(os.path.join(DEPLOY, recipe)).read()
        values = {"LISTEN": f"127.0.0.1:{self.port}", "VIGILD": f"127.0.0.1:{vigild_port}", "TMP": str(tmp_path),
                  **values}
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        assert not re.findall(r"@[A-Z_]+@", text), text
        path = tmp_path / recipe
        path.write_text(text)
        if recipe.startswith("haproxy"):
            check = [executable("haproxy"), "-c", "-f", str(path)]
            command = [executable("haproxy"), "-W", "-db", "-f", str(path)]
        else:
            check = [executable("nginx"), "-t", "-p", str(tmp_path), "-c", str(path)]
            command = [executable("nginx"), "-p", str(tmp_path), "-c", str(path)]
        done = subprocess.run(check, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        self.log = open(tmp_path / f"{recipe}.log", "w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, open(self.log.name).read()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{recipe} did not listen")

    def url(self, path="/ws"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def balancer(tmp_path):
    started = []

    def start(recipe, daemon, **values):
        b = Balancer(recipe, daemon.port, tmp_path, **values)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


async def echo_from(url, source, client, **kwargs):
    """Opens a WebSocket from the loopback address `source`, echoes once, returns it open."""
    ws = await websockets.connect(f"{url}?client={client}", local_addr=(source, 0), **kwargs)
    await ws.send("hello")
    assert await ws.recv() == "hello"
    return ws


async def echo_once(daemon, balancer, source, client, **kwargs):
    """One echo through `balancer` from `source`: the connection's /connections entry while it
    was open, and the client's own port."""
    ws = await echo_from(balancer.url(), source, client, **kwargs)
    entry = live(daemon, client)
    local_port = ws.transport.get_extra_info("sockname")[1]
    await ws.close()
    return entry, local_port


def live(daemon, client):
    (entry,) = [c for c in daemon.get_json("/connections")["connections"] if c["client"] == client]
    return entry


def metric(daemon, name):
    return daemon.metrics().get(name, 0)


@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_behind_haproxy_the_proxy_header_names_the_client(vigild, balancer, send_proxy):
    """HAProxy (recipe deploy/haproxy-send-proxy.cfg) in TCP mode with send-proxy-v2 or
    send-proxy: each record's peer is the client (127.0.0.2 with its port) and via is
    HAProxy; HAProxy's health checks (check-send-proxy: LOCAL) are counted as such and not as
    failed handshakes."""
    daemon = vigild("--proxy-protocol", "any", "--trusted-proxies", "127.0.0.1")
    haproxy = balancer("haproxy-send-proxy.cfg", daemon, SEND_PROXY=send_proxy)
    before = daemon.metrics()

    entry, local_port = asyncio.run(echo_once(daemon, haproxy, "127.0.0.2", "behind-haproxy"))
    assert entry["peer"] == f"127.0.0.2:{local_port}", entry
    assert entry["via"].startswith("127.0.0.1:"), entry
    (record,) = daemon.wait_closes(1)
    assert (record["peer"], record["via"]) == (entry["peer"], entry["via"])
    line = daemon.wait_for_log(lambda e: e.get("ws_client") == "behind-haproxy" and "ws_close_kind" in e)
    assert (line["ws_peer"], line["ws_via"]) == (entry["peer"], entry["via"]), line
    # Every other connection HAProxy made hung up after its header: the test's probe of its port,
    # and with send-proxy (v1, no LOCAL command) each health check, a TCP4 header every second.
    # So the headers that led on to a handshake are those counted minus those hung up: this one.
    assert headers_of_connections_that_went_on(daemon) == 1, rejections(daemon)
    # HAProxy checks every second, each check a header and a reset (v2: LOCAL; v1: TCP4 naming the
    # check's own connection, from a peer gone before its address is read): a check, not refused.
    checks = before.get(HEADERS.format("local"), 0)
    deadline = time.monotonic() + 15
    while metric(daemon, HEADERS.format("local")) < checks + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(daemon, HEADERS.format("local")) >= checks + 3, "HAProxy's health checks: local"
    assert metric(daemon, HEADERS.format("untrusted")) == 0, "a check is not an untrusted peer's header"
    # The test's probe of HAProxy's port (a connect and a close) may land after `before`: when
    # HAProxy's connection for it ends cleanly it is a hang-up during the handshake, at most one.
    after = rejections(daemon)
    closed = 'vigil_handshakes_rejected_total{reason="closed_during_handshake"}'
    assert after.get(closed, 0) - before.get(closed, 0) <= 1, (after, before)
    others = {k: v for k, v in after.items() if v and k != closed}
    assert others == {k: v for k, v in rejections(before).items() if v and k != closed}, "checks are not refused"


def headers_of_connections_that_went_on(daemon):
    """PROXY headers counted as `proxy` minus connections hung up during the handshake, once no
    health check is in flight between the two counts (it settles within a poll or two)."""
    deadline = time.monotonic() + 15
    while True:
        samples = daemon.metrics()
        went_on = samples.get(HEADERS.format("proxy"), 0) - samples.get(
            'vigil_handshakes_rejected_total{reason="closed_during_handshake"}', 0)
        if went_on == 1 or time.monotonic() > deadline:
            return went_on
        time.sleep(0.1)


def rejections(metrics_or_daemon):
    samples = metrics_or_daemon if isinstance(metrics_or_daemon, dict) else metrics_or_daemon.metrics()
    return {k: v for k, v in samples.items() if k.startswith("vigil_handshakes_rejected_total")}


def test_behind_nginx_stream_with_proxy_protocol(vigild, balancer):
    """nginx's stream module with proxy_protocol on (deploy/nginx-stream-proxy-protocol.conf):
    the client is the PROXY v1 header's."""
    daemon = vigild("--proxy-protocol", "v1", "--trusted-proxies", "127.0.0.0/8")
    nginx = balancer("nginx-stream-proxy-protocol.conf", daemon)

    # The client is in trusted_proxies here (127.0.0.0/8): its own X-Forwarded-For still names nobody.
    entry, local_port = asyncio.run(
        echo_once(daemon, nginx, "127.0.0.3", "behind-nginx-stream", additional_headers={"X-Forwarded-For": "6.6.6.6"}))
    assert entry["peer"] == f"127.0.0.3:{local_port}" and entry["via"].startswith("127.0.0.1:"), entry
    (record,) = daemon.wait_closes(1)
    assert record["peer"] == entry["peer"]


def test_behind_nginx_http_the_forwarded_chain_names_the_client(vigild, balancer):
    """nginx's HTTP proxy (deploy/nginx-http-forwarded-for.conf) appends the client to
    X-Forwarded-For; vigild, in proxy mode, trusts nginx: the client leg's peer is 127.0.0.2,
    via is nginx, and the backend gets the chain `127.0.0.2, 127.0.0.1` (the client, then the
    hop vigild received it from) and the scheme nginx was reached by."""
    backend = Backend()
    try:
        daemon = vigild("--mode", "proxy", "--upstream", backend.url(), "--trusted-proxies", "127.0.0.1")
        nginx = balancer("nginx-http-forwarded-for.conf", daemon)

        async def scenario():
            # A Forwarded header the client wrote itself, which nginx passes on as it is: not believed.
            ws = await websockets.connect(nginx.url("/headers?client=behind-nginx-http"), local_addr=("127.0.0.2", 0),
                                          additional_headers={"Forwarded": "for=6.6.6.6"})
            seen = json.loads(await ws.recv())
            entry = [c for c in daemon.get_json("/connections")["connections"] if c["leg"] == "client"][0]
            await ws.close()
            return seen, entry

        seen, entry = asyncio.run(scenario())
    finally:
        backend.stop()
    headers = {}
    for name, value in seen["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    assert entry["peer"] == "127.0.0.2" and entry["via"].startswith("127.0.0.1:"), entry
    assert headers["x-forwarded-for"] == ["127.0.0.2, 127.0.0.1"], headers
    assert headers["x-forwarded-proto"] == ["http"], headers
    assert headers["forwarded"] == ["for=6.6.6.6, for=127.0.0.1;host=127.0.0.1;proto=http"], headers


def test_the_per_ip_limit_counts_the_real_client(vigild, balancer):
    """max_connections_per_ip 1 behind HAProxy: a second connection from 127.0.0.2 is refused
    with 429, one from 127.0.0.3 is not, though all come from HAProxy's one address."""
    daemon = vigild("--proxy-protocol", "v2", "--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1")
    haproxy = balancer("haproxy-send-proxy.cfg", daemon, SEND_PROXY="send-proxy-v2")

    async def scenario():
        first = await echo_from(haproxy.url(), "127.0.0.2", "first")
        with pytest.raises(InvalidStatus) as refused:
            await echo_from(haproxy.url(), "127.0.0.2", "second")
        other = await echo_from(haproxy.url(), "127.0.0.3", "other")
        await first.close()
        await other.close()
        await asyncio.to_thread(daemon.wait_closes, 2)
        again = await echo_from(haproxy.url(), "127.0.0.2", "again")  # the count was given back
        await again.close()
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 429
    entry = daemon.wait_for_log(lambda e: e.get("reason") == "per_ip_limit" or "refusing connections from" in e["message"])
    assert "127.0.0.2" in entry["message"], entry
    assert metric(daemon, 'vigil_handshakes_rejected_total{reason="per_ip_limit"}') == 1


def raw_upgrade(port, preamble=b"", headers=""):
    """A handshake on a raw socket after `preamble` (a PROXY header): the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preamble + handshake_request("/ws?client=raw", extra=headers))
        status, _, _ = read_http_response(sock)
        return status


def test_an_untrusted_peer_is_not_believed(vigild):
    """From a peer not in trusted_proxies, Forwarded, X-Forwarded-For and a PROXY header are
    ignored (the record names the TCP peer), counted and logged once per peer a minute."""
    daemon = vigild("--trusted-proxies", "10.0.0.0/8")
    forged = "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
    assert raw_upgrade(daemon.port, headers=forged) == 101
    (record,) = daemon.wait_closes(1)
    assert record["peer"].startswith("127.0.0.1:") and record["via"] is None, record
    daemon.wait_for_log(lambda e: "ignoring x-forwarded-for from 127.0.0.1" in e["message"])
    assert raw_upgrade(daemon.port, headers=forged) == 101
    daemon.wait_closes(2)
    assert sum("ignoring x-forwarded-for" in e["message"] for e in daemon.json_logs()) == 1, "once a minute per peer"

    proxied = vigild("--proxy-protocol", "v1", "--trusted-proxies", "10.0.0.0/8")
    header = b"PROXY TCP4 6.6.6.6 127.0.0.1 4242 80\r\n"
    assert raw_upgrade(proxied.port, preamble=header) == 101
    (record,) = proxied.wait_closes(1)
    assert record["peer"].startswith("127.0.0.1:") and record["via"] is None, record
    assert metric(proxied, HEADERS.format("untrusted")) == 1
    proxied.wait_for_log(lambda e: "ignoring the PROXY header from 127.0.0.1" in e["message"]
                         and "6.6.6.6:4242" in e["message"])


def test_a_connection_without_a_proxy_header_is_refused_and_a_local_one_is_a_health_check(vigild):
    """With proxy_protocol on, a connection that begins with anything else (a plain request, a
    malformed header, the other version) is closed unanswered and counted proxy_protocol; a v2
    LOCAL header followed by a hang-up (a health check) is not a refused handshake."""
    daemon = vigild("--proxy-protocol", "v2", "--trusted-proxies", "127.0.0.1")
    for preamble in (b"", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(preamble + handshake_request("/ws"))
            assert sock.recv(100) == b"", preamble
    deadline = time.monotonic() + 10
    while metric(daemon, 'vigil_handshakes_rejected_total{reason="proxy_protocol"}') < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(daemon, 'vigil_handshakes_rejected_total{reason="proxy_protocol"}') == 3
    daemon.wait_for_log(lambda e: "did not begin with a PROXY protocol v2 header" in e["message"])
    daemon.wait_for_log(lambda e: "of 65551 bytes (at most 4096 accepted)" in e["message"])
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(local)
        deadline = time.monotonic() + 10
        while metric(daemon, HEADERS.format("local")) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while daemon.get_json("/status")["handshakes_pending"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.get_json("/status")["handshakes_pending"] == 0, "the health check's hang-up was handled"
    assert rejections(daemon) == {'vigil_handshakes_rejected_total{reason="proxy_protocol"}': 3.0}, rejections(daemon)
    # The same from a peer that is not trusted is no health check: counted untrusted, its hang-up refused.
    untrusting = vigild("--proxy-protocol", "v2", "--trusted-proxies", "10.0.0.0/8")
    with socket.create_connection(("127.0.0.1", untrusting.port), timeout=10) as sock:
        sock.sendall(local)
    deadline = time.monotonic() + 10
    while not rejections(untrusting) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rejections(untrusting) == {'vigil_handshakes_rejected_total{reason="closed_during_handshake"}': 1.0}
    assert metric(untrusting, HEADERS.format("untrusted")) == 1 and metric(untrusting, HEADERS.format("local")) == 0
    v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12) + socket.inet_aton("192.0.2.9") \
        + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 5555, daemon.port)
    assert raw_upgrade(daemon.port, preamble=v2) == 101
    (record,) = daemon.wait_closes(1)
    assert record["peer"] == "192.0.2.9:5555" and record["via"].startswith("127.0.0.1:"), record


def test_the_proxy_header_comes_before_tls(vigild, balancer, tmp_path):
    """vigild terminating TLS behind HAProxy in TCP mode with send-proxy-v2: the PROXY header
    is read before the TLS handshake, and the wss:// client is recorded as itself, with its TLS."""
    import ssl
    from tlsca import PrivateCA
    ca = PrivateCA(tmp_path)
    cert, key = ca.issue("edge", ["localhost"])
    daemon = vigild("--proxy-protocol", "v2", "--trusted-proxies", "127.0.0.1", "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key))
    haproxy = balancer("haproxy-send-proxy.cfg", daemon, SEND_PROXY="send-proxy-v2")
    context = ssl.create_default_context(cafile=str(ca.pem))

    async def scenario():
        ws = await websockets.connect(f"wss://localhost:{haproxy.port}/ws?client=tls-behind", ssl=context,
                                      local_addr=("127.0.0.2", 0))
        await ws.send("over TLS")
        assert await ws.recv() == "over TLS"
        port = ws.transport.get_extra_info("sockname")[1]
        await ws.close()
        return port

    port = asyncio.run(scenario())
    record = [r for r in daemon.wait_closes(1) if r["client"] == "tls-behind"][0]
    assert (record["peer"], record["tls"], record["tls_server_name"]) == (f"127.0.0.2:{port}", "TLSv1.3", "localhost")
    assert record["via"].startswith("127.0.0.1:")


def test_behind_nginx_http_the_per_ip_limit_counts_the_forwarded_client(vigild, balancer):
    """max_connections_per_ip 1 behind nginx's HTTP proxy: counted by the X-Forwarded-For
    client at the request head, so 127.0.0.2's second connection gets 429 and 127.0.0.3's
    first does not; the count comes back when the connection closes."""
    daemon = vigild("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1")
    nginx = balancer("nginx-http-forwarded-for.conf", daemon)

    async def scenario():
        first = await echo_from(nginx.url(), "127.0.0.2", "first")
        with pytest.raises(InvalidStatus) as refused:
            await echo_from(nginx.url(), "127.0.0.2", "second")
        other = await echo_from(nginx.url(), "127.0.0.3", "other")
        await first.close()
        await other.close()
        await asyncio.to_thread(daemon.wait_closes, 2)
        again = await echo_from(nginx.url(), "127.0.0.2", "again")
        await again.close()
        return refused.value.response.status_code

    assert asyncio.run(scenario()) == 429
    assert metric(daemon, 'vigil_handshakes_rejected_total{reason="per_ip_limit"}') == 1


def test_the_proxy_header_is_read_within_the_handshake_timeout(vigild):
    """A connection that sends half a PROXY header and stops is closed at handshake_timeout
    and counted so."""
    daemon = vigild("--proxy-protocol", "any", "--trusted-proxies", "127.0.0.1", "--handshake-timeout", "1s")
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=20) as sock:
        sock.sendall(b"PROXY TCP4 192.0.2.7 ")
        assert sock.recv(100) == b"", "closed by vigild"
    deadline = time.monotonic() + 10
    while not rejections(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rejections(daemon) == {'vigil_handshakes_rejected_total{reason="handshake_timeout"}': 1.0}
