"""vigilctl, the real binary, against a real vigild: tables and JSON over TCP and the Unix
socket, the config file's endpoint and token, exit codes a script can use, --follow over
/closes/stream, a slow stream reader dropped, and colours only on a terminal (tmux)."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time

import websockets

from conftest import ROOT
from test_close_table import raw_eof, ws_close_with
from test_proxy import Backend

VIGILCTL = os.path.join(os.path.dirname(os.environ.get("VIGILD", os.path.join(ROOT, ".build", "debug", "vigild"))),
                        "vigilctl")
LOAD = os.path.join(ROOT, ".build", "debug", "vigil-load")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def ctl(*args, env=None, timeout=15):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_") and k != "NO_COLOR"}
    full_env.update(env or {})
    return subprocess.run([VIGILCTL, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def status_url(daemon):
    return daemon.status_url


def test_tables_and_json_over_tcp_and_the_unix_socket(vigild, tmp_path):
    sock = str(tmp_path / "status.sock")
    daemon = vigild("--status-socket", sock)

    async def scenario():
        live = [await websockets.connect(daemon.ws(f"?client=live{i}")) for i in range(2)]
        await live[0].send("hello")
        await live[0].recv()
        await ws_close_with(daemon, "quitter", 1000, "bye")
        await asyncio.to_thread(raw_eof, daemon)
        return live

    async def run():
        live = await scenario()
        daemon.wait_closes(2)
        results = {}
        for name, where in [("tcp", status_url(daemon)), ("unix", sock)]:
            results[name] = {
                "status": await asyncio.to_thread(ctl, "status", "--status", where),
                "connections": await asyncio.to_thread(ctl, "connections", "--status", where),
            }
        results["json"] = await asyncio.to_thread(ctl, "connections", "--status", sock, "-o", "json")
        results["filtered"] = await asyncio.to_thread(ctl, "connections", "--status", sock, "--filter", "client=live1",
                                                      "--no-headers")
        results["wide"] = await asyncio.to_thread(ctl, "connections", "--status", sock, "-o", "wide", "--sort", "messages")
        results["closes"] = await asyncio.to_thread(ctl, "closes", "--status", sock)
        results["eof"] = await asyncio.to_thread(ctl, "closes", "--status", sock, "--kind", "eof", "-o", "json")
        results["bad"] = await asyncio.to_thread(ctl, "closes", "--status", sock, "--kind", "bogus")
        results["api"] = daemon.get_json("/connections")
        for ws in live:
            await ws.close()
        return results

    r = asyncio.run(run())
    for name in ("tcp", "unix"):
        status = r[name]["status"]
        assert status.returncode == 0, status.stderr
        assert re.search(r"^state\s+ready$", status.stdout, re.M) and re.search(r"^connections\s+2 open", status.stdout, re.M)
        assert re.search(r"^closes\s+2 in all: 1 normal, 1 eof$", status.stdout, re.M), status.stdout
        table = r[name]["connections"].stdout.splitlines()
        assert table[0].split() == ["ID", "PEER", "CLIENT", "AGE", "IDLE", "RTT", "IN", "OUT"]
        assert sorted(line.split()[2] for line in table[1:]) == ["live0", "live1"]
    assert ESCAPE.search(r["tcp"]["connections"].stdout) is None, "no colour into a pipe"
    listed = json.loads(r["json"].stdout)
    assert [c["id"] for c in listed["connections"]] == [c["id"] for c in r["api"]["connections"]]
    assert listed["count"] == 2
    assert [line.split()[2] for line in r["filtered"].stdout.splitlines()] == ["live1"], r["filtered"].stdout
    wide = r["wide"].stdout.splitlines()
    assert wide[0].split()[8:] == ["LEG", "TARGET", "ROUTE", "MEMBER", "PATH", "PINGS", "PONGS", "APP", "RTT", "BYTES", "IN", "BYTES", "OUT"]
    assert wide[1].split()[2] == "live0", "sorted by messages, busiest first"
    closes = r["closes"].stdout.splitlines()
    assert closes[0].split() == ["CLOSED", "ID", "KIND", "CAUSE", "CODE", "BY", "WHO", "AFTER"]
    assert [line.split()[2] for line in closes[1:]] == ["normal", "eof"], "oldest first"
    eof = json.loads(r["eof"].stdout)
    assert [c["kind"] for c in eof["closes"]] == ["eof"] and eof["total"] == 1
    assert r["bad"].returncode == 1 and 'unknown kind "bogus"' in r["bad"].stderr


def test_exit_codes_for_scripts(vigild, tmp_path):
    service = Backend()
    try:
        ok = vigild()
        assert ctl("health", "--status", ok.status_url).returncode == 0
        config = tmp_path / "warn.yaml"
        config.write_text(f"targets:\n  - name: up\n    url: ws://127.0.0.1:{service.port}/\n"
                          f"  - name: refused\n    url: ws://127.0.0.1:{service.port}/forbidden\n")
        warn = vigild("--config", str(config))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ctl("targets", "is-up", "up", "--status", warn.status_url).returncode != 0:
            time.sleep(0.1)
        health = ctl("health", "--status", warn.status_url)
        assert health.returncode == 1 and health.stdout.splitlines()[0] == "warn", health.stdout
        assert "not up: refused" in health.stdout
        assert ctl("targets", "is-up", "up", "--status", warn.status_url).returncode == 0
        down = ctl("targets", "is-up", "refused", "--status", warn.status_url)
        assert (down.returncode, down.stdout.strip()) == (3, "down")
        unknown = ctl("targets", "is-up", "nope", "--status", warn.status_url)
        assert unknown.returncode == 3 and "nope" in unknown.stderr and unknown.stdout == ""
        targets = ctl("targets", "--status", warn.status_url).stdout.splitlines()
        assert [line.split()[:2] for line in targets[1:]] == [["up", "up"], ["refused", "down"]]
        critical = tmp_path / "fail.yaml"
        critical.write_text(f"targets:\n  - name: refused\n    url: ws://127.0.0.1:{service.port}/forbidden\n    critical: true\n")
        failing = vigild("--config", str(critical))
        time.sleep(0.5)
        assert ctl("health", "--status", failing.status_url).returncode == 2
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
        unreachable = ctl("health", "--status", nobody)
        assert unreachable.returncode == 3 and "cannot reach vigild at" in unreachable.stderr
        assert ctl("status", "--status", nobody).returncode == 3
        assert ctl("targets", "is-up", "up", "--status", nobody).returncode == 3
        # 1 and 2 are only ever warn and fail: a refused request or a bad --status is "unknown".
        token = tmp_path / "token"
        token.write_text("a-token-of-sixteen-or-more\n")
        guarded = vigild("--status-token-file", str(token))
        refused = ctl("health", "--status", guarded.status_url)
        assert refused.returncode == 3 and "401" in refused.stderr, refused.stderr
        assert ctl("status", "--status", guarded.status_url).returncode == 1, "other commands keep 1 for an API error"
        garbled = ctl("health", "--status", "ftp://nowhere")
        assert garbled.returncode == 3 and "expected a Unix socket path or http://HOST:PORT" in garbled.stderr
    finally:
        service.stop()


def test_the_endpoint_and_token_come_from_vigilds_config_file(vigild, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-of-some-length\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "vigil.yaml"
    config.write_text(f"status_listen: 127.0.0.1:{port}\nstatus_token_file: {token}\n")
    daemon = vigild("--config", str(config), "--status-listen", f"127.0.0.1:{port}")
    found = ctl("status", "--config", str(config))
    assert found.returncode == 0 and f"http://127.0.0.1:{port}" in found.stdout, found.stderr
    also = ctl("status", env={"VIGIL_CONFIG": str(config)})
    assert also.returncode == 0
    # The targets (and their secrets) are vigild's business: vigilctl does not read them.
    with_targets = tmp_path / "with-targets.yaml"
    with_targets.write_text(config.read_text() + "targets:\n  - name: a\n    url: ws://127.0.0.1:9/\n"
                            "    headers_file: /nonexistent/secret.headers\n")
    assert ctl("status", "--config", str(with_targets)).returncode == 0
    refused = ctl("status", "--status", daemon.status_url)
    assert refused.returncode == 1 and "401" in refused.stderr and "status_token_file" in refused.stderr
    assert ctl("status", "--status", daemon.status_url, "--token-file", str(token)).returncode == 0


def test_follow_prints_each_new_close_as_it_happens(vigild):
    daemon = vigild()
    follower = subprocess.Popen([VIGILCTL, "closes", "--follow", "-o", "json", "--status", daemon.status_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        for i in range(3):
            asyncio.run(ws_close_with(daemon, f"f{i}", 1000 + (i == 2), "x"))
        lines = [json.loads(follower.stdout.readline()) for _ in range(3)]
        assert [line["client"] for line in lines] == ["f0", "f1", "f2"]
        assert [line["id"] for line in lines] == sorted(r["id"] for r in daemon.closes()["closes"])
        assert lines[2]["kind"] == "going_away"
    finally:
        follower.kill()
        follower.wait()
    # Filters apply to the stream as to /closes; a bad one is the same 400.
    status, _, body = daemon.get("/closes/stream?kind=bogus")
    assert status == 400 and "unknown kind" in json.loads(body)["error"]


def test_a_stream_reader_that_does_not_read_is_dropped_with_a_last_line(vigild):
    """10,000 closes while a stream reader reads nothing: the kernel's send buffer takes up to
    4 MiB of them (about 7,000 records here), and once 1000 more wait in vigild the reader is
    dropped with a last line; /closes has every record."""
    daemon = vigild("--ping-interval", "0")
    reader = socket.create_connection(("127.0.0.1", int(daemon.status_url.rsplit(":", 1)[1])))
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.sendall(b"GET /closes/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(0.3)
    load = subprocess.Popen([LOAD, "--url", daemon.ws(), "-c", "10000", "--duration", "60s", "--no-close"],
                            stdout=subprocess.PIPE, text=True)
    assert json.loads(load.stdout.readline())["connections"] == 10000
    load.kill()
    load.wait()
    daemon.wait_closes(10000, timeout=60)
    # Now read, and fast (a 4 KiB window on loopback moves about 35 KB/s): what was queued, then
    # the last line, must arrive within the 30 s a dropped reader is given.
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    reader.settimeout(30)
    received = b""
    while True:
        chunk = reader.recv(1 << 16)
        if not chunk:
            break
        received += chunk
    reader.close()
    text = received.decode()
    assert "fell 1000 records behind" in text and "was dropped" in text, text[-300:]
    records = [line for line in text.splitlines() if line.startswith('{"cause"')]
    assert 0 < len(records) < 10000, "some records came, then the stream ended"
    assert daemon.get("/livez")[0] == 200 and daemon.closes()["total"] == 10000, "nothing lost from /closes"


def test_colours_on_a_terminal_only_and_never_with_no_color(vigild, tmp_path):
    assert shutil.which("tmux"), "make test installs tmux"
    daemon = vigild()
    asyncio.run(ws_close_with(daemon, "tty", 1000, "bye"))
    raw_eof(daemon)
    daemon.wait_closes(2)

    def on_tty(env_prefix):
        session = f"vigilctl-{os.getpid()}-{len(env_prefix)}"
        out = tmp_path / f"{session}.txt"
        # One tmux server per terminal: killing the last session of a shared server makes it exit,
        # and a new-session that reaches the dying server's socket fails ("server exited unexpectedly").
        tmux = ["tmux", "-S", str(tmp_path / f"{session}.sock")]
        command = f"{env_prefix} {VIGILCTL} closes --status {daemon.status_url}; sleep 30"
        subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "200", "-y", "20", command], check=True)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                captured = subprocess.run(tmux + ["capture-pane", "-p", "-e", "-t", session],
                                          capture_output=True, text=True).stdout
                if "eof" in captured:
                    out.write_text(captured)
                    return captured
                time.sleep(0.1)
            raise AssertionError(f"nothing on the terminal: {captured!r}")
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)

    coloured = on_tty("env -u NO_COLOR TERM=xterm-256color")
    assert re.search(r"\x1b\[(0;)?32m\s*normal", coloured), repr(coloured)
    assert re.search(r"\x1b\[(0;)?33m\s*eof", coloured), repr(coloured)
    assert re.search(r"\x1b\[1m\s*CLOSED", coloured), "the header is bold"
    plain = on_tty("env NO_COLOR=1 TERM=xterm-256color")
    assert "normal" in plain and ESCAPE.search(plain) is None, repr(plain)


# Completes the last of the given words the way bash calls a completion function
# (`complete -F`: the command, the word being completed, the word before it).
BASH_COMPLETE = """
shopt -s extglob
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_vigilctl vigilctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "${COMPREPLY[@]}"
"""


def require_shell(name):
    """zsh and fish come with make test's packages; missing, the test fails rather than skips."""
    path = shutil.which(name)
    assert path, f"{name} is missing: make test installs it"
    return path


def completion_script(shell, tmp_path):
    result = ctl("--generate-completion-script", shell)
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"vigilctl.{shell}"
    path.write_text(result.stdout)
    return str(path)


def test_bash_completes_commands_option_names_and_their_values(tmp_path):
    script = completion_script("bash", tmp_path)

    def complete(*words):
        result = subprocess.run(["bash", "-c", BASH_COMPLETE, "complete", script, "vigilctl", *words],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert {"status", "connections", "closes", "targets", "health"} <= set(complete(""))
    assert complete("tar") == ["targets"]
    assert set(complete("targets", "")) >= {"list", "is-up"}
    assert complete("closes", "--kind", "") == ["normal", "going_away", "abnormal", "eof", "error"]
    assert complete("closes", "--kind", "ab") == ["abnormal"]
    assert {"pong_timeout", "app_pong_timeout", "truncated_frame", "partner_closed"} <= set(complete("closes", "--cause", ""))
    assert complete("closes", "--leg", "") == ["client", "upstream", "target"]
    assert complete("connections", "--sort", "r") == ["rtt"]
    assert complete("status", "-o", "") == ["table", "wide", "json"]
    assert "--follow" in complete("closes", "--f")


def test_fish_completes_with_descriptions(tmp_path):
    script = completion_script("fish", tmp_path)

    def complete(line):
        result = subprocess.run([require_shell("fish"), "--no-config", "-c", f"source {script}; complete -C '{line}'"],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        return dict((line.split("\t") + [""])[:2] for line in result.stdout.splitlines())

    commands = complete("vigilctl ")
    assert commands["health"] == "The health checks; exits 0 pass, 1 warn, 2 fail, 3 unknown."
    assert set(complete("vigilctl closes --kind ")) == {"normal", "going_away", "abnormal", "eof", "error"}
    assert set(complete("vigilctl closes --cause pong")) == {"pong_timeout"}


def test_zsh_loads_the_completion_and_registers_it_for_vigilctl(tmp_path):
    """zsh completes only inside its line editor; this checks the script loads in a shell with
    compinit and is registered for vigilctl, with the kinds among its option values."""
    script = completion_script("zsh", tmp_path)
    result = subprocess.run([require_shell("zsh"), "-f", "-c",
                             f"autoload -U compinit && compinit -u -D && source {script} && print -r -- $_comps[vigilctl]"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.strip() == "_vigilctl"
    assert "going_away" in open(script).read()


def test_options_every_command_takes_may_come_before_the_command(vigild):
    """kubectl, systemctl and docker take global options before the command; vigilctl said
    "Unknown option '--status'" to `vigilctl --status URL status`."""
    daemon = vigild()
    before = ctl("--status", daemon.status_url, "-o", "json", "status")
    assert before.returncode == 0, before.stderr
    after = ctl("status", "--status", daemon.status_url, "-o", "json")
    assert json.loads(before.stdout)["state"] == json.loads(after.stdout)["state"] == "ready"
    mixed = ctl(f"--status={daemon.status_url}", "--no-headers", "targets", "is-up", "nothing")
    assert mixed.returncode == 3 and "nothing" in mixed.stdout + mixed.stderr, mixed.stdout + mixed.stderr
    unknown = ctl("--bogus", "status")
    assert unknown.returncode == 64 and "--bogus" in unknown.stderr


def test_vigilctl_reads_the_units_environment_file(vigild, tmp_path):
    """vigild.service takes VIGIL_* overrides from /etc/vigil/vigild.env (EnvironmentFile=), and
    configuration.md points them there; vigilctl, finding vigild without --config, reads them
    too. Run in a mount namespace with /etc/vigil of the test's own."""
    daemon = vigild()
    etc = tmp_path / "etc-vigil"
    etc.mkdir()
    os.makedirs("/etc/vigil", exist_ok=True)

    def in_namespace(*args):
        command = f"mount --bind {etc} /etc/vigil && exec {VIGILCTL} " + " ".join(args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, env=env,
                              timeout=15)

    endpoint = daemon.status_url.split("//", 1)[1]
    (etc / "vigild.env").write_text(f'# as the unit reads it\nVIGIL_STATUS_LISTEN="{endpoint}"\n; VIGIL_MODE=echo\n')
    found = in_namespace("status", "-o", "json")
    assert found.returncode == 0 and json.loads(found.stdout)["state"] == "ready", found.stderr
    (etc / "vigild.env").write_text("VIGIL_STATUS_LISTEN=127.0.0.1:9\n")
    unreachable = in_namespace("status")
    assert unreachable.returncode == 3 and "127.0.0.1:9" in unreachable.stderr, unreachable.stderr


def test_the_help_says_what_the_commands_do():
    """vigilctl closes' help said newest first while the table is oldest first; targets list
    was undocumented."""
    closes = " ".join(ctl("closes", "--help").stdout.split())
    assert "oldest first" in closes and "newest first" in closes.split("-o json")[1], closes
    doc = open(os.path.join(ROOT, "docs", "vigilctl.md"), encoding="utf-8").read()
    assert "vigilctl targets list" in doc
    assert ctl("targets", "list", "--help").returncode == 0
