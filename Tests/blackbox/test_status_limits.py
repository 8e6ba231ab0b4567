"""The status API against clients that try to hold or exhaust it, and who may read it at all:
slowloris heads (408), idle keep-alive connections, the connection cap (503), a client that
pipelines big requests and never reads (bounded memory, every response still delivered), pages
with a cursor, a bearer token, Host checks against DNS rebinding, a Unix socket with its own
permissions, and the refusal to expose the API without a token."""

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from conftest import ROOT, VIGILD, rss_kib, run_vigild
from systemd_support import wait_until

LOAD = os.path.join(ROOT, ".build", "debug", "vigil-load")


def status_endpoint(daemon):
    host, port = daemon.status_url[len("http://"):].split(":")
    return host, int(port)


class Responses:
    """Reads HTTP responses one after another off a socket, keeping what follows each."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def next(self, timeout=10):
        """(status, headers dict, body) of the next response; None when the socket closes first."""
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                break
            rest += chunk
        body, self.buffer = rest[:length], rest[length:]
        return int(lines[0].split(" ")[1]), headers, body


def record_closes(daemon, count):
    """`count` close records on file: vigil-load opens that many connections and is killed."""
    load = subprocess.Popen([LOAD, "--url", daemon.ws(), "-c", str(count), "--duration", "60s", "--no-close"],
                            stdout=subprocess.PIPE, text=True)
    assert json.loads(load.stdout.readline())["connections"] == count
    load.kill()
    load.wait()
    wait_until(lambda: daemon.get_json("/status")["closes_total"] == count, f"{count} closes", 30)


def read_response(sock, timeout=10):
    """One response on a socket that carries only one."""
    return Responses(sock).next(timeout)


def request(daemon, path, headers=()):
    """One GET with the given extra headers on a fresh connection."""
    with socket.create_connection(status_endpoint(daemon), timeout=10) as sock:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
        host = dict((n.lower(), v) for n, v in headers).get("host")
        sock.sendall(f"GET {path} HTTP/1.1\r\n{'' if host else 'Host: 127.0.0.1' + chr(13) + chr(10)}{extra}"
                     f"Connection: close\r\n\r\n".encode())
        return read_response(sock)


def test_slowloris_heads_get_408_and_connections_beyond_the_cap_get_503(vigild):
    """500 connections that send the first line of a request and nothing more: at the defaults
    (status_max_connections 64, status_request_timeout 5s) the first 64 get 408 after 5 s, the
    rest 503 at once, and none is left open; /livez answers afterwards."""
    daemon = vigild()
    socks = []
    for _ in range(500):
        sock = socket.create_connection(status_endpoint(daemon), timeout=10)
        sock.sendall(b"GET /livez HTTP/1.1\r\n")
        socks.append(sock)
    started = time.monotonic()
    outcomes = {}
    for sock in socks:
        response = read_response(sock, timeout=15)
        code = response[0] if response else "closed"
        outcomes[code] = outcomes.get(code, 0) + 1
        # Closed after the answer: the next read is EOF (or a reset), never more data or a wait.
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
        sock.close()
    elapsed = time.monotonic() - started
    assert outcomes.get(408, 0) + outcomes.get(503, 0) == 500, outcomes
    assert 1 <= outcomes.get(408, 0) <= 64, outcomes
    assert elapsed < 12, f"every slow connection was answered and closed within the request timeout ({elapsed:.1f}s)"
    assert daemon.get("/livez")[0] == 200


def test_a_408_names_the_setting_and_a_503_says_to_retry(vigild):
    daemon = vigild("--status-request-timeout", "1s", "--status-max-connections", "1")
    with socket.create_connection(status_endpoint(daemon), timeout=10) as slow:
        slow.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        with socket.create_connection(status_endpoint(daemon), timeout=10) as refused:
            code, headers, body = read_response(refused)
            assert code == 503 and headers["retry-after"] == "1"
            assert "status_max_connections 1" in json.loads(body)["error"]
        code, headers, body = read_response(slow)
        assert code == 408 and headers["connection"] == "close"
        assert "status_request_timeout" in json.loads(body)["error"]
    wait_until(lambda: daemon.get("/livez")[0] == 200, "the slot back after the 408")


def test_idle_keep_alive_connections_are_closed(vigild):
    daemon = vigild("--status-idle-timeout", "1s")
    with socket.create_connection(status_endpoint(daemon), timeout=10) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # still open within the idle time
        assert read_response(sock)[0] == 200
        started = time.monotonic()
        assert sock.recv(1) == b"", "closed by vigild once idle"
        assert 0.8 < time.monotonic() - started < 5


def test_a_client_that_pipelines_and_never_reads_costs_one_response_not_all(vigild):
    """2,000 closes on record, then one client pipelines 400 requests for 1,000 of them (about
    400 KB each, 160 MB in all) and reads nothing: vigild stops reading from it instead of
    encoding and buffering every answer, other clients are served, and when the client does
    read, every response arrives whole."""
    daemon = vigild("--ping-interval", "0")
    record_closes(daemon, 2000)
    before = rss_kib(daemon.proc.pid)
    sock = socket.create_connection(status_endpoint(daemon), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    requests = b"GET /closes?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 400
    sender = threading.Thread(target=sock.sendall, args=(requests,))
    sender.start()
    time.sleep(3)
    growth_mib = (rss_kib(daemon.proc.pid) - before) / 1024
    assert daemon.get("/livez")[0] == 200, "other clients are served meanwhile"
    assert growth_mib < 32, f"vigild's memory grew {growth_mib:.0f} MiB for a client that reads nothing"
    responses = Responses(sock)
    received = 0
    while received < 400:
        code, _, body = responses.next(timeout=30)
        assert code == 200
        assert len(json.loads(body)["closes"]) == 1000
        received += 1
    sender.join(30)
    sock.close()


def test_closes_and_connections_come_in_pages(vigild):
    daemon = vigild("--ping-interval", "0")
    load = subprocess.Popen([LOAD, "--url", daemon.ws(), "-c", "250", "--duration", "60s", "--no-close"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(load.stdout.readline())["connections"] == 250
        first = daemon.get_json("/connections?limit=100")
        assert first["count"] == 250 and len(first["connections"]) == 100
        assert first["next"] == f"/connections?after_id={first['connections'][-1]['id']}&limit=100"
        live = daemon.pages("/connections?limit=100")
        assert len(live) == 250 and len({c["id"] for c in live}) == 250
        assert [c["id"] for c in live] == sorted(c["id"] for c in live)
        assert daemon.get_json("/connections")["next"] is None, "250 fit in one default page (1000)"
    finally:
        load.kill()
        load.wait()
    wait_until(lambda: daemon.get_json("/status")["closes_total"] == 250, "250 closes", 30)
    kind = daemon.closes("?limit=1")["closes"][0]["kind"]  # the load generator was killed: all alike
    page = daemon.closes(f"?limit=100&kind={kind}")
    assert page["total"] == 250 and len(page["closes"]) == 100
    assert page["next"] == f"/closes?before_seq={page['closes'][-1]['seq']}&kind={kind}&limit=100"
    records = daemon.pages(f"/closes?limit=100&kind={kind}")
    assert [r["seq"] for r in records] == list(range(250, 0, -1)), "newest first, each close once"
    assert daemon.closes("?before_seq=3")["closes"][0]["seq"] == 2


def test_a_bearer_token_guards_all_but_the_probes_and_a_reload_rotates_it(vigild, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-token-0123456789\n")
    daemon = vigild("--status-token-file", str(token_file))
    assert daemon.get("/livez")[0] == 200 and daemon.get("/readyz")[0] == 200 and daemon.get("/")[0] == 200
    # What is open is said alike wherever the token is explained (it once left out /).
    open_paths = "/, /livez and /readyz"
    assert open_paths in " ".join(run_vigild("--help").stdout.split())
    assert f"but {open_paths} must carry" in " ".join(run_vigild("--help").stdout.split())
    assert f"({open_paths} do not)" in json.loads(request(daemon, "/status")[2])["error"]
    assert f"{open_paths} stay open" in open(os.path.join(ROOT, "systemd", "vigil.yaml")).read()
    code, headers, body = request(daemon, "/status")
    assert code == 401 and headers["www-authenticate"] == 'Bearer realm="vigil"'
    assert "status_token_file" in json.loads(body)["error"]
    code, headers, _ = request(daemon, "/closes", [("Authorization", "Bearer wrong-token-0123456789")])
    assert code == 401 and "invalid_token" in headers["www-authenticate"]
    assert request(daemon, "/metrics", [("Authorization", "Bearer first-token-0123456789")])[0] == 200
    token_file.write_text("second-token-0123456789\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_log(lambda e: "configuration reloaded" in e.get("message", ""))
    assert request(daemon, "/status", [("Authorization", "Bearer first-token-0123456789")])[0] == 401
    assert request(daemon, "/status", [("Authorization", "Bearer second-token-0123456789")])[0] == 200


def test_an_unreadable_or_short_token_file_stops_the_start(tmp_path):
    missing = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0",
                         "--status-token-file", str(tmp_path / "nope"))
    assert missing.returncode != 0 and f"cannot read status_token_file {tmp_path / 'nope'}" in missing.stderr
    short = tmp_path / "short"
    short.write_text("abc\n")
    result = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--status-token-file", str(short))
    assert result.returncode != 0 and "16 to 4096 characters" in result.stderr


def test_host_names_other_than_addresses_get_421(vigild):
    """DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 sends
    Host: attacker.example; it gets 421, not the data. Addresses, localhost and status_hosts pass."""
    daemon = vigild("--status-hosts", "status.example.com")
    _, port = status_endpoint(daemon)
    code, _, body = request(daemon, "/status", [("Host", f"attacker.example:{port}")])
    assert code == 421 and "attacker.example" in json.loads(body)["error"]
    assert request(daemon, "/livez", [("Host", "attacker.example")])[0] == 421
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "status.example.com", f"STATUS.example.com:{port}"):
        assert request(daemon, "/status", [("Host", host)])[0] == 200, host
    # RFC 9112 §3.2: HTTP/1.1 without Host, or two Host fields, is a 400; HTTP/1.0 may omit it.
    def raw_status(head):
        with socket.create_connection(status_endpoint(daemon), timeout=5) as sock:
            sock.sendall(head)
            return sock.recv(65536).split(b" ", 2)[1]
    assert raw_status(b"GET /status HTTP/1.1\r\n\r\n") == b"400"
    assert raw_status(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: attacker.example\r\n\r\n") == b"400"
    assert raw_status(b"GET /status HTTP/1.0\r\n\r\n") == b"200"


def test_a_non_loopback_status_listener_needs_a_token_or_status_insecure(tmp_path):
    result = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "0.0.0.0:0")
    assert result.returncode != 0
    assert "status_listen" in result.stderr and "status_token_file" in result.stderr and "status_insecure" in result.stderr
    assert "a bearer token for all but /, /livez and /readyz" in result.stderr, result.stderr
    token = tmp_path / "token"
    token.write_text("a-token-of-some-length\n")
    for extra in (["--status-insecure", "true"], ["--status-token-file", str(token)]):
        proc = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "0.0.0.0:0",
                                 "--log", "stderr", *extra], stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stderr.readline()
            assert "vigild ready" in line, line
        finally:
            proc.kill()
            proc.wait()


def unix_get(path, target):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: whatever\r\nConnection: close\r\n\r\n".encode())
        return read_response(sock)


def test_the_unix_socket_has_its_mode_and_group_and_needs_no_token(vigild, tmp_path):
    token = tmp_path / "token"
    token.write_text("a-token-of-some-length\n")
    path = str(tmp_path / "status.sock")
    group = grp.getgrnam("nogroup")
    daemon = vigild("--status-socket", path, "--status-socket-mode", "0660", "--status-socket-group", "nogroup",
                    "--status-token-file", str(token))
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == group.gr_gid
    code, _, body = unix_get(path, "/status")
    assert code == 200 and json.loads(body)["state"] == "ready"
    assert request(daemon, "/status")[0] == 401, "TCP still needs the token"
    # A second vigild may not take over a socket in use.
    second = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--status-socket", path)
    assert second.returncode != 0 and "is in use" in second.stderr
    daemon.stop()
    assert not os.path.exists(path), "the socket file goes with vigild"


def test_a_stale_socket_file_is_replaced_and_a_regular_file_is_not(vigild, tmp_path):
    path = str(tmp_path / "status.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    daemon = vigild("--status-socket", path)
    assert unix_get(path, "/livez")[0] == 200
    daemon.stop()
    regular = tmp_path / "file"
    regular.write_text("precious\n")
    result = run_vigild("--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--status-socket", str(regular))
    assert result.returncode != 0 and "is not a socket" in result.stderr
    assert regular.read_text() == "precious\n"


# HOST PORT CLIENTS SECONDS: that many clients ask for pages of closes, connections and metrics
# back to back; prints [responses, MiB]; any answer but 200 fails it.
HAMMER = """
import json, socket, sys, threading, time
host, port, clients, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
counts, errors, stop = [], [], time.monotonic() + seconds

def client():
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            buffer = b""
            while time.monotonic() < stop:
                for path in ("/closes?limit=1000", "/connections?limit=1000", "/metrics"):
                    sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n".encode())
                    while b"\\r\\n\\r\\n" not in buffer:
                        buffer += sock.recv(1 << 16)
                    head, _, buffer = buffer.partition(b"\\r\\n\\r\\n")
                    status = int(head.split(b" ")[1])
                    length = int([l.split(b":")[1] for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length:")][0])
                    while len(buffer) < length:
                        buffer += sock.recv(1 << 20)
                    assert status == 200, (path, status)
                    counts.append(length)
                    buffer = buffer[length:]
    except BaseException as error:
        errors.append(repr(error))

threads = [threading.Thread(target=client) for _ in range(clients)]
for thread in threads: thread.start()
for thread in threads: thread.join()
if errors: sys.exit("; ".join(errors))
print(json.dumps([len(counts), sum(counts) / 2**20]))
"""


def loop_cpu_seconds(pid):
    """CPU time (user + system) of each of vigild's NIO event-loop threads, by NIO group:
    {group: {thread name: seconds}}. Threads are named NIO-ELT-<group>-#<n>."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            fields = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        if name.startswith("NIO-ELT-"):
            group = int(name.split("-")[2])
            groups.setdefault(group, {})[name] = (int(fields[11]) + int(fields[12])) / ticks
    return groups


def test_heavy_status_encoding_runs_on_the_status_loop_and_the_keep_alives_go_on(vigild):
    """Four clients ask for pages of 1,000 closes, of live connections and of metrics back to
    back for four seconds while 200 connections are pinged every 100 ms. What keeps the watchdog
    fed is where that work runs: on the status API's own event loop, never on a WebSocket loop,
    whose stall would stop the keep-alives (systemd would then kill vigild and every live record
    with it). Asserted as that mechanism, by the CPU each loop thread spent (CPU time, which a
    busy machine stretches far less than it stretches gaps): the status loop did the encoding,
    and the WebSocket loops spent no more while it ran than in as long a quiet spell before. (It
    asserted a gap under 40 ms between keep-alives, which a busy shared machine broke: 44 ms
    once.) The keep-alives are checked too, against a WatchdogSec of 1 s."""
    from notify import NotifyListener

    listener = NotifyListener()
    try:
        daemon = vigild("--ping-interval", "500ms", env={**listener.env(), "WATCHDOG_USEC": "1000000"})
        listener.wait_for("READY", "1")
        record_closes(daemon, 2000)
        live = subprocess.Popen([LOAD, "--url", daemon.ws(), "-c", "200", "--duration", "60s", "--no-close"],
                                stdout=subprocess.PIPE, text=True)
        assert json.loads(live.stdout.readline())["connections"] == 200
        # The clients run in a process of their own: in this one, they would hold the Python
        # lock the notification listener's thread needs to time each keep-alive.
        host, port = status_endpoint(daemon)
        quiet = loop_cpu_seconds(daemon.proc.pid)
        status_group = max(quiet)  # the status listener's loop group is created last, at start
        assert len(quiet[status_group]) == 1 and len(quiet) >= 2, quiet
        time.sleep(4)
        before = loop_cpu_seconds(daemon.proc.pid)
        started = time.monotonic()
        hammer = subprocess.run([sys.executable, "-c", HAMMER, host, str(port), "4", "4"],
                                capture_output=True, text=True, timeout=60)
        ended = time.monotonic()
        assert hammer.returncode == 0, hammer.stderr
        after = loop_cpu_seconds(daemon.proc.pid)
        responses, mib = json.loads(hammer.stdout)
        def websocket_cpu(since, until):
            return sum(sum(until[g].values()) - sum(since[g].get(n, 0) for n in until[g]) for g in until if g != status_group)
        status_cpu = sum(after[status_group].values()) - sum(before[status_group].values())
        websocket_quiet, websocket_busy = websocket_cpu(quiet, before), websocket_cpu(before, after)
        keep_alives = [m for m in listener.with_key("WATCHDOG", "1") if started <= m[0] <= ended]
        gaps = [b[0] - a[0] for a, b in zip(keep_alives, keep_alives[1:])]
        print(f"{responses} status responses ({mib:.0f} MiB) in {ended - started:.1f} s; CPU: status loop "
              f"{status_cpu:.2f} s, WebSocket loops {websocket_busy:.2f} s (in as long before: "
              f"{websocket_quiet:.2f} s); {len(keep_alives)} keep-alives, longest gap {max(gaps) * 1000:.0f} ms")
        assert responses >= 40, "the status API was kept busy"
        assert websocket_busy - websocket_quiet < status_cpu / 2, "the status API's encoding ran on a WebSocket loop"
        assert len(keep_alives) >= 4, f"a keep-alive every 500 ms over 4 s: {len(keep_alives)}"
        assert max(gaps) < 1.0, f"a full WatchdogSec without a keep-alive: longest gap {max(gaps):.3f} s"
        live.kill()
        live.wait()
        wait_until(lambda: daemon.get_json("/status")["closes_total"] == 2200, "2200 closes", 30)
        closes = {k: v for k, v in daemon.metrics().items() if k.startswith("vigil_closes_total") and v}
        causes = {key.split('cause="')[1].split('"')[0] for key in closes}
        assert causes <= {"eof", "reset"}, f"every close was vigil-load killed, none a missed pong: {closes}"
    finally:
        listener.close()
