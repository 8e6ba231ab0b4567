"""TLS on vigild's WebSocket listener, against independent peers: Python websockets and ssl
over wss:// with a private CA, `openssl s_client` (versions, ALPN, SNI), a raw socket speaking
plain HTTP, headless Chromium trusting the certificate by its key, and a proxy whose backend
sees how the client came. Certificates rotate under 1,000 live connections."""

import asyncio
import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest
import websockets

from conftest import run_vigild
from test_proxy import Backend
from tlsca import PrivateCA
from wsraw import handshake_request, read_http_response

FAILED = 'vigil_tls_handshakes_failed_total{{reason="{}"}}'
REJECTED_TLS = 'vigil_handshakes_rejected_total{reason="tls"}'


@pytest.fixture
def ca(tmp_path):
    return PrivateCA(tmp_path)


def tls_daemon(vigild, ca, *flags, names=("localhost", "127.0.0.1")):
    cert, key = ca.issue("site", list(names))
    return vigild("--tls-cert-file", str(cert), "--tls-key-file", str(key), *flags)


def client_context(ca):
    return ssl.create_default_context(cafile=str(ca.pem))


def wss(daemon, host="localhost", path="/ws"):
    return f"wss://{host}:{daemon.port}{path}"


def s_client(daemon, *args):
    """`openssl s_client` against vigild: its output, the connection closed at once."""
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.port}", *args],
                          input=b"", capture_output=True, timeout=20)
    return (done.stdout + done.stderr).decode("utf-8", "replace")


def negotiated(output):
    """The TLS version s_client agreed (`TLSv1.3`), or None if the handshake failed."""
    match = re.search(r"^New, (TLSv[\d.]+), Cipher is (?!\(NONE\))", output, re.M)
    return match.group(1) if match else None


def subject_of(output):
    match = re.search(r"^subject=.*CN ?= ?([^,\n]+)", output, re.M)
    return match.group(1).strip() if match else None


def metric(daemon, name):
    return daemon.metrics().get(name, 0)


def wait_metric(daemon, name, value, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(daemon, name) == value:
            return
        time.sleep(0.05)
    assert metric(daemon, name) == value, (name, daemon.metrics())


def served_certificate(daemon, server_name="localhost"):
    """The DER certificate vigild serves a new connection that asks for `server_name`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def der(chain_path):
    return ssl.PEM_cert_to_DER_cert(chain_path.read_text().split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")


def test_wss_echo_and_what_the_records_say(vigild, ca):
    """Python websockets over wss:// with the test CA: vigild's ready line says wss://, the
    echo works, and /connections, the close record and the close line carry the TLS version
    and the name the client asked for (none for an IP address: clients send no SNI for it)."""
    daemon = tls_daemon(vigild, ca)
    assert daemon.ws_url.startswith("wss://127.0.0.1:"), daemon.ws_url
    context = client_context(ca)

    async def scenario():
        async with websockets.connect(wss(daemon, path="/ws?client=by-name"), ssl=context) as ws:
            await ws.send("over TLS")
            assert await ws.recv() == "over TLS"
            live = daemon.get_json("/connections")["connections"]
            assert [(c["client"], c["tls"], c["tls_server_name"]) for c in live] == \
                [("by-name", "TLSv1.3", "localhost")], live
        async with websockets.connect(wss(daemon, "127.0.0.1", "/ws?client=by-address"), ssl=context) as ws:
            await ws.send("again")
            assert await ws.recv() == "again"

    asyncio.run(scenario())
    records = {r["client"]: r for r in daemon.wait_closes(2)}
    assert (records["by-name"]["tls"], records["by-name"]["tls_server_name"]) == ("TLSv1.3", "localhost")
    assert (records["by-address"]["tls"], records["by-address"]["tls_server_name"]) == ("TLSv1.3", None)
    line = daemon.wait_for_log(lambda e: e.get("ws_client") == "by-name" and "ws_close_kind" in e)
    assert (line["ws_tls"], line["ws_tls_server_name"]) == ("TLSv1.3", "localhost"), line
    assert metric(daemon, REJECTED_TLS) == 0


def test_versions_below_the_minimum_are_refused_and_alpn_is_http11(vigild, ca):
    """openssl s_client: TLS 1.2 and 1.3 are served by default, TLS 1.1 is refused (counted
    protocol_version), and so is a TLS 1.2 suite without forward secrecy and AEAD (counted
    no_shared_cipher); ALPN answers http/1.1; with tls_min_version 1.3, TLS 1.2 is refused."""
    daemon = tls_daemon(vigild, ca)
    assert negotiated(s_client(daemon, "-tls1_3")) == "TLSv1.3"
    assert negotiated(s_client(daemon, "-tls1_2")) == "TLSv1.2"
    output = s_client(daemon, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in output, output
    # TLS 1.2 with forward-secret AEAD suites only: a CBC suite finds nothing in common.
    assert negotiated(s_client(daemon, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")) is None
    wait_metric(daemon, FAILED.format("no_shared_cipher"), 1)
    old = s_client(daemon, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert negotiated(old) is None, old
    wait_metric(daemon, FAILED.format("protocol_version"), 1)
    daemon.wait_for_log(lambda e: e.get("reason") == "protocol_version" and "TLS handshake failed" in e["message"])

    strict = tls_daemon(vigild, ca, "--tls-min-version", "1.3")
    assert negotiated(s_client(strict, "-tls1_2")) is None
    assert negotiated(s_client(strict, "-tls1_3")) == "TLSv1.3"
    wait_metric(strict, FAILED.format("protocol_version"), 1)
    wait_metric(strict, REJECTED_TLS, 1)


def test_sni_chooses_the_certificate(vigild, ca, tmp_path):
    """tls_certificates: an exact name and a wildcard pick their certificates; another name,
    or none, gets the default. Python's ssl, asking for a listed name, verifies it."""
    default_cert, default_key = ca.issue("default", ["localhost", "127.0.0.1"])
    b_cert, b_key = ca.issue("b", ["b.example.test"])
    w_cert, w_key = ca.issue("w", ["*.w.example.test"])
    config = tmp_path / "vigil.yaml"
    config.write_text(json.dumps({
        "tls_cert_file": str(default_cert), "tls_key_file": str(default_key),
        "tls_certificates": [
            {"server_names": ["b.example.test"], "cert_file": str(b_cert), "key_file": str(b_key)},
            {"server_names": "*.w.example.test", "cert_file": str(w_cert), "key_file": str(w_key)},
        ]}))
    daemon = vigild("--config", str(config))
    assert subject_of(s_client(daemon, "-servername", "b.example.test")) == "b.example.test"
    assert subject_of(s_client(daemon, "-servername", "B.Example.Test")) == "b.example.test"
    assert subject_of(s_client(daemon, "-servername", "x.w.example.test")) == "*.w.example.test"
    assert subject_of(s_client(daemon, "-servername", "x.y.w.example.test")) == "localhost"
    assert subject_of(s_client(daemon, "-servername", "other.example.test")) == "localhost"
    assert subject_of(s_client(daemon, "-noservername")) == "localhost"

    async def scenario():
        async with websockets.connect(f"wss://127.0.0.1:{daemon.port}/ws?client=b", ssl=client_context(ca),
                                      server_hostname="b.example.test") as ws:
            await ws.send("b")
            assert await ws.recv() == "b"

    asyncio.run(scenario())
    (record,) = daemon.wait_closes(1)
    assert record["tls_server_name"] == "b.example.test"


def test_without_a_default_the_first_entry_serves_and_exact_names_win(vigild, ca, tmp_path):
    """Without tls_cert_file the first entry is the default and is still chosen by its own
    name; an exact name is chosen before a wildcard that also matches, whatever the order."""
    app, app_key = ca.issue("app", ["app.example.test"])
    wild, wild_key = ca.issue("wild", ["*.example.test"])
    config = tmp_path / "vigil.yaml"
    config.write_text(json.dumps({"tls_certificates": [
        {"server_names": "*.example.test", "cert_file": str(wild), "key_file": str(wild_key)},
        {"server_names": "app.example.test", "cert_file": str(app), "key_file": str(app_key)},
    ]}))
    daemon = vigild("--config", str(config))
    assert subject_of(s_client(daemon, "-servername", "app.example.test")) == "app.example.test"
    assert subject_of(s_client(daemon, "-servername", "chat.example.test")) == "*.example.test"
    assert subject_of(s_client(daemon, "-noservername")) == "*.example.test"


def test_concurrent_handshakes_each_record_their_own_server_name(vigild, ca):
    """200 handshakes at once over two event loops, asking for four names: each record carries
    the name its own client asked for (the name reaches vigild through a callback that knows no
    connection; a mix-up would show here)."""
    cert, key = ca.issue("many", ["a.example.test", "b.example.test", "c.example.test", "d.example.test"])
    daemon = vigild("--tls-cert-file", str(cert), "--tls-key-file", str(key))
    names = ["a", "b", "c", "d"]
    context = client_context(ca)

    async def one(n):
        name = f"{names[n % 4]}.example.test"
        async with websockets.connect(f"wss://127.0.0.1:{daemon.port}/ws?client={name}-{n}", ssl=context,
                                      server_hostname=name, open_timeout=60) as ws:
            await ws.send("x")
            await ws.recv()

    async def scenario():
        await asyncio.gather(*(one(n) for n in range(200)))

    asyncio.run(scenario())
    records = daemon.wait_closes(200, timeout=60)
    wrong = [(r["client"], r["tls_server_name"]) for r in records if not r["client"].startswith(r["tls_server_name"] + "-")]
    assert not wrong, wrong[:10]


def test_plain_http_on_the_tls_port_gets_400_at_once(vigild, ca):
    """A client speaking plain HTTP to the TLS port is answered at once with a plain-text 400
    that says to use https:// or wss://, counted plain_http; vigild goes on serving."""
    daemon = tls_daemon(vigild, ca, "--handshake-timeout", "30s")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(handshake_request("/ws"))
        status, headers, body = read_http_response(sock)
    assert status == 400, (status, body)
    assert headers["content-type"].startswith("text/plain")
    assert b"wss://" in body, body
    assert time.monotonic() - started < 15, "answered, not left to the 30 s handshake timeout"
    wait_metric(daemon, FAILED.format("plain_http"), 1)
    wait_metric(daemon, REJECTED_TLS, 1)
    entry = daemon.wait_for_log(lambda e: e.get("reason") == "plain_http")
    assert "GET /ws HTTP/1.1" in entry["message"], entry

    async def still_serving():
        async with websockets.connect(wss(daemon), ssl=client_context(ca)) as ws:
            await ws.send("after")
            assert await ws.recv() == "after"

    asyncio.run(still_serving())


def test_failed_handshakes_are_counted_by_reason(vigild, ca):
    """A client that does not trust vigild's certificate (certificate_rejected), one that hangs
    up after connecting (closed) and one that offers only TLS 1.1 (protocol_version): each is
    counted once by its reason and logged with it; the refused handshakes count the two that
    TLS refused as `tls`, and the hang-up as `closed_during_handshake` (as on a plain port)."""
    daemon = tls_daemon(vigild, ca)
    untrusting = ssl.create_default_context()  # the system's roots: not the test CA
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.wrap_socket(raw, server_hostname="localhost")
    socket.create_connection(("127.0.0.1", daemon.port), timeout=10).close()
    s_client(daemon, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    for reason in ("certificate_rejected", "closed", "protocol_version"):
        wait_metric(daemon, FAILED.format(reason), 1)
        daemon.wait_for_log(lambda e: e.get("reason") == reason and e["message"].startswith("TLS handshake failed"))
    wait_metric(daemon, REJECTED_TLS, 2)
    wait_metric(daemon, 'vigil_handshakes_rejected_total{reason="closed_during_handshake"}', 1)


def test_files_that_cannot_be_served_refuse_the_start(ca, tmp_path):
    """Start-up refuses a certificate it cannot serve, naming the file and the reason."""
    cert, key = ca.issue("good", ["localhost"])
    _, other_key = ca.issue("other", ["localhost"])
    expired, expired_key = ca.issue("expired", ["localhost"], not_before="20250101000000Z",
                                    not_after="20250201000000Z")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (["--tls-cert-file", cert, "--tls-key-file", other_key],
         f"the key in {other_key} does not match the certificate in {cert}"),
        (["--tls-cert-file", expired, "--tls-key-file", expired_key],
         f"the certificate in {expired} (for localhost) expired at 2025-02-01 00:00:00 UTC"),
        (["--tls-cert-file", tmp_path / "missing.pem", "--tls-key-file", key],
         f"cannot read tls certificate {tmp_path / 'missing.pem'}: No such file or directory"),
        (["--tls-cert-file", garbage, "--tls-key-file", key], f"tls certificate {garbage} holds no"),
        (["--tls-cert-file", cert], "tls_cert_file"),
    ]
    for flags, expected in cases:
        done = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--log", "stderr",
                          *map(str, flags))
        assert done.returncode != 0, (flags, done.stderr)
        assert expected in done.stderr, (expected, done.stderr)
    done = run_vigild("--tls-cert-file", str(cert), "--print-config")
    assert "needs tls_key_file too" in done.stderr, done.stderr


def raise_descriptor_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


def test_rotation_under_1000_live_connections(vigild, ca, tmp_path):
    """SIGHUP re-reads the certificate files: 1,000 wss:// connections stay open and keep
    echoing, new handshakes get the new certificate; a bad new file (a key that does not
    match) is logged and counted, and the running certificate stays."""
    raise_descriptor_limit(4096)
    first, first_key = ca.issue("first", ["localhost", "127.0.0.1"])
    second, second_key = ca.issue("second", ["localhost", "127.0.0.1"])
    _, stray_key = ca.issue("stray", ["localhost"])
    served, served_key = tmp_path / "served.pem", tmp_path / "served.key"
    shutil.copy(first, served)
    shutil.copy(first_key, served_key)
    daemon = vigild("--tls-cert-file", str(served), "--tls-key-file", str(served_key), "--ping-interval", "0")
    assert served_certificate(daemon) == der(first)
    context = client_context(ca)
    count = 1000

    async def scenario():
        connections = []
        for start in range(0, count, 100):
            connections += await asyncio.gather(*(
                websockets.connect(wss(daemon, "127.0.0.1", f"/ws?client=c{n}"), ssl=context, ping_interval=None,
                                   open_timeout=60)
                for n in range(start, start + 100)))
        assert daemon.get_json("/status")["connections"] == count
        shutil.copy(second, served)
        shutil.copy(second_key, served_key)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_log(lambda e: e["message"].startswith("configuration reloaded") and "tls:" in e["message"])
        assert await asyncio.to_thread(served_certificate, daemon) == der(second)
        for n, ws in enumerate(connections):
            await ws.send(f"still here {n}")
        for n, ws in enumerate(connections):
            assert await ws.recv() == f"still here {n}"
        shutil.copy(stray_key, served_key)
        daemon.proc.send_signal(signal.SIGHUP)
        entry = daemon.wait_for_log(lambda e: e["message"].startswith("reload: the running certificate stays"))
        assert f"the key in {served_key} does not match" in entry["message"], entry
        assert await asyncio.to_thread(served_certificate, daemon) == der(second)
        assert daemon.get_json("/status")["connections"] == count
        await asyncio.gather(*(ws.close() for ws in connections))

    asyncio.run(scenario())
    assert metric(daemon, "vigil_tls_certificate_reload_failures_total") == 1
    records = daemon.wait_closes(count, timeout=60)
    assert {r["kind"] for r in records} == {"normal"}, "every connection ended by its client, none by the reloads"


def test_a_reload_applies_what_it_can_and_keeps_a_bad_certificate_running(vigild, ca, tmp_path):
    """Two host names; at a reload one's renewal is good and the other's key does not match:
    the good one is served, the bad one's running certificate stays (logged, counted), and the
    rest of the reload applies. The expiry of what is served is in /metrics. A reload cannot
    turn TLS off."""
    a1, a1_key = ca.issue("a1", ["a.example.test"])
    a2, a2_key = ca.issue("a2", ["a.example.test"])
    b1, b1_key = ca.issue("b1", ["b.example.test"])
    _, stray_key = ca.issue("stray", ["b.example.test"])
    files = {name: tmp_path / f"served-{name}" for name in ("a.pem", "a.key", "b.pem", "b.key")}
    for name, source in (("a.pem", a1), ("a.key", a1_key), ("b.pem", b1), ("b.key", b1_key)):
        shutil.copy(source, files[name])
    config = tmp_path / "vigil.yaml"

    def write(ping, tls=True):
        settings = {"ping_interval": ping}
        if tls:
            settings["tls_certificates"] = [
                {"server_names": "a.example.test", "cert_file": str(files["a.pem"]), "key_file": str(files["a.key"])},
                {"server_names": "b.example.test", "cert_file": str(files["b.pem"]), "key_file": str(files["b.key"])}]
        config.write_text(json.dumps(settings))

    write("30s")
    daemon = vigild("--config", str(config))
    expiry = f'vigil_tls_certificate_not_after_seconds{{cert_file="{files["a.pem"]}"}}'
    not_after = subprocess.run(["openssl", "x509", "-in", str(a1), "-noout", "-enddate"], capture_output=True,
                               text=True, check=True).stdout.strip().split("=", 1)[1]
    assert metric(daemon, expiry) == time.mktime(time.strptime(not_after, "%b %d %H:%M:%S %Y %Z")) - time.timezone
    shutil.copy(a2, files["a.pem"])
    shutil.copy(a2_key, files["a.key"])
    shutil.copy(stray_key, files["b.key"])
    write("20s")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_log(lambda e: e["message"].startswith("configuration reloaded") and "ping_interval 30s → 20s" in e["message"])
    entry = daemon.wait_for_log(lambda e: e["message"].startswith("reload: the running certificate stays"))
    assert f"the key in {files['b.key']} does not match the certificate in {files['b.pem']}" in entry["message"], entry
    assert served_certificate(daemon, "a.example.test") == der(a2)
    assert served_certificate(daemon, "b.example.test") == der(b1)
    assert metric(daemon, "vigil_tls_certificate_reload_failures_total") == 1
    write("20s", tls=False)
    daemon.proc.send_signal(signal.SIGHUP)
    entry = daemon.wait_for_log(lambda e: e["message"].startswith("reload failed"))
    assert "cannot be turned off by a reload" in entry["message"], entry
    assert served_certificate(daemon, "a.example.test") == der(a2)


def test_the_tls_handshake_counts_against_the_handshake_limits(vigild, ca):
    """A TCP connection that never starts its TLS handshake is pending: with
    max_pending_handshakes 2, two silent ones make a third client's request (over TLS) a 503;
    handshake_timeout closes the silent ones, counted as TLS timeouts."""
    daemon = tls_daemon(vigild, ca, "--max-pending-handshakes", "2", "--handshake-timeout", "6s")
    silent = [socket.create_connection(("127.0.0.1", daemon.port), timeout=30) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while daemon.get_json("/status")["handshakes_pending"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        context = client_context(ca)
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(handshake_request("/ws"))
                status, headers, body = read_http_response(tls)
        assert status == 503, (status, body)
        assert b"max_pending_handshakes" in body, body
        for sock in silent:
            assert sock.recv(1) == b"", "closed by vigild at handshake_timeout"
    finally:
        for sock in silent:
            sock.close()
    wait_metric(daemon, FAILED.format("timeout"), 2)
    wait_metric(daemon, 'vigil_handshakes_rejected_total{reason="handshake_timeout"}', 2)


def test_the_proxy_tells_the_backend_the_client_came_over_tls(vigild, ca):
    """Through vigild's proxy over wss://, the backend sees X-Forwarded-Proto: https and
    Forwarded: proto=https."""
    backend = Backend()
    try:
        daemon = tls_daemon(vigild, ca, "--mode", "proxy", "--upstream", backend.url())

        async def scenario():
            async with websockets.connect(wss(daemon, path="/headers"), ssl=client_context(ca)) as ws:
                return json.loads(await ws.recv())

        headers = {}
        for name, value in asyncio.run(scenario())["headers"]:
            headers.setdefault(name.lower(), []).append(value)
        assert headers["x-forwarded-proto"] == ["https"], headers
        assert headers["forwarded"] == [f'for=127.0.0.1;host="localhost:{daemon.port}";proto=https'], headers
    finally:
        backend.stop()


def spki_pin(cert):
    """Base64 SHA-256 of the certificate's public key, as Chromium's SPKI list takes it."""
    key = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=key, capture_output=True,
                          check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=spki, capture_output=True,
                            check=True).stdout
    return base64.b64encode(digest).decode()


def test_headless_chromium_over_wss(vigild, ca):
    """A page in headless Chromium, trusting vigild's certificate by its key, opens
    wss://localhost and gets its echo; vigild records the browser's TLS and SNI."""
    from chromium import Chromium, require_chromium
    from test_browser_origin import Site

    cert, key = ca.issue("browser", ["localhost"])
    site = Site("127.0.0.1")
    try:
        daemon = vigild("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--allowed-origins", site.origin)
        with Chromium(require_chromium(), flags=[f"--ignore-certificate-errors-spki-list={spki_pin(cert)}"]) as browser:
            page = browser.new_page()
            target = urllib.parse.quote(wss(daemon, path="/ws?client=chromium"), safe="")
            page.navigate(f"{site.origin}/probe.html?ws={target}")
            seen = page.evaluate("window.probe")
        assert seen == {"opened": True, "errored": False, "echo": f"hello from {site.origin}", "closeCode": 1000}, seen
        (record,) = daemon.wait_closes(1)
        assert (record["client"], record["tls"], record["tls_server_name"]) == ("chromium", "TLSv1.3", "localhost")
    finally:
        site.close()
