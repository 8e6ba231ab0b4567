"""Configuration as an operator meets it: flags, VIGIL_* environment, config files, errors."""

import asyncio
import json

import pytest
import websockets

from conftest import run_vigild


def test_print_config_shows_each_source(tmp_path):
    config = tmp_path / "vigil.yaml"
    config.write_text("ping_interval: 1m\npong_timeout: 3s\nmax_frame: 16KiB\n")
    result = run_vigild("--config", str(config), "--ping-interval", "500ms", "--print-config",
                        env={"VIGIL_PONG_TIMEOUT": "4s"})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["ping_interval"].split()[1] == "500ms" and lines["ping_interval"].endswith("# flag --ping-interval")
    assert lines["pong_timeout"].split()[1] == "4s" and lines["pong_timeout"].endswith("# environment VIGIL_PONG_TIMEOUT")
    assert lines["max_frame"].split()[1] == "16KiB" and lines["max_frame"].endswith(f"# config file {config}")
    assert lines["listen"].split()[1] == "127.0.0.1:8080" and lines["listen"].endswith("# default")


def test_json_config_file(tmp_path):
    config = tmp_path / "vigil.json"
    config.write_text(json.dumps({"max_connections": 20, "mode": "command"}))
    result = run_vigild("--print-config", env={"VIGIL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines["max_connections"] == "20" and lines["mode"] == "command"


ERRORS = [
    (["--ping-interval", "30"], {}, None, 'invalid value "30" for ping_interval (flag --ping-interval): expected a duration'),
    (["--max-frame", "64KB"], {}, None, 'invalid value "64KB" for max_frame (flag --max-frame)'),
    (["--listen", "8080"], {}, None, 'invalid value "8080" for listen (flag --listen): expected HOST:PORT'),
    ([], {"VIGIL_PONG_TIMEOUT": "soon"}, None, 'invalid value "soon" for pong_timeout (environment VIGIL_PONG_TIMEOUT)'),
    ([], {"VIGIL_PING_INTERVALL": "5s"}, None, 'unknown environment variable VIGIL_PING_INTERVALL="5s"'),
    ([], {}, "ping_intervall: 5s\n", 'unknown key ping_intervall (value "5s") in config file'),
    ([], {}, "max_connections: lots\n", 'invalid value "lots" for max_connections (config file'),
    ([], {}, "- just\n- a list\n", "must hold a mapping"),
]


@pytest.mark.parametrize("args,env,file_text,message", ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_startup_errors_name_key_value_and_source(tmp_path, args, env, file_text, message):
    if file_text is not None:
        path = tmp_path / "vigil.yaml"
        path.write_text(file_text)
        args = [*args, "--config", str(path)]
    result = run_vigild(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


def test_missing_config_file():
    result = run_vigild("--config", "/nonexistent/vigil.yaml")
    assert result.returncode == 2
    assert "cannot read config file /nonexistent/vigil.yaml: No such file or directory" in result.stderr


def test_port_in_use_is_a_clear_error(vigild):
    daemon = vigild()
    result = run_vigild("--listen", f"127.0.0.1:{daemon.port}", "--status-listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert f"cannot bind the WebSocket listener on 127.0.0.1:{daemon.port}: " in result.stderr


def test_environment_configures_a_running_daemon(vigild):
    daemon = vigild(env={"VIGIL_MODE": "command", "VIGIL_PATH": "/socket"})
    assert daemon.ws_url.endswith("/socket")

    async def scenario():
        async with websockets.connect(daemon.ws_url) as ws:
            await ws.send('{"requestID": 1, "command": "hi"}')
            assert json.loads(await ws.recv()) == {"requestID": 1, "success": True, "result": "command 'hi' processed"}

    asyncio.run(scenario())


def test_text_logs_are_human_lines(tmp_path):
    import subprocess
    import signal
    import time
    from conftest import VIGILD
    proc = subprocess.Popen([VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert " notice vigild: vigild ready ws=ws://127.0.0.1:" in line
    assert not line.startswith("{")


def test_docs_document_every_setting_with_its_real_default():
    """docs/configuration.md's settings table cannot drift from the binary's embedded defaults,
    nor from what a reload applies."""
    import os
    from conftest import ROOT
    reference = open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8").read()
    result = run_vigild("--print-config")
    assert result.returncode == 0
    help_text = " ".join(run_vigild("--help").stdout.split())
    keys = []
    for line in result.stdout.splitlines():
        key, value = line.split()[0], line.split()[1]
        keys.append(key)
        flag, variable = "--" + key.replace("_", "-"), "VIGIL_" + key.upper()
        reloadable = f"env {variable}; reloadable)" in help_text or f"env {variable}; per route; reloadable)" in help_text
        row = f"| `{key}` | `{flag}` | `{variable}` | `{value}` | {'yes' if reloadable else 'restart'} |"
        assert row in reference, f"docs/configuration.md lacks the row {row}"
        assert flag in help_text, f"vigild --help does not list {flag}"
    rows = [line for line in reference.splitlines() if line.startswith("| `")]
    assert len(rows) == len(keys), "a row for a setting vigild does not have"


def test_the_settings_a_route_may_set_are_the_ones_docs_proxy_lists():
    """docs/proxy.md names exactly the settings `vigild --help` marks `per route` (the catalog's)."""
    import os
    import re
    from conftest import ROOT
    help_text = " ".join(run_vigild("--help").stdout.split())
    marked = re.findall(r"env VIGIL_(\w+); per route", help_text)
    assert len(marked) >= 10, marked
    per_route = [name.lower() for name in marked]
    doc = open(os.path.join(ROOT, "docs", "proxy.md"), encoding="utf-8").read()
    listed = doc.split("A route may set these settings for its own connections", 1)[1].split("(`vigild --help`", 1)[0]
    assert re.findall(r"`(\w+)`", listed) == per_route


def _start_with_nofile(soft, hard, *args):
    import resource
    import subprocess
    from conftest import VIGILD
    return subprocess.Popen(
        [VIGILD, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))


def test_open_file_limit_is_raised_to_the_hard_limit():
    import signal
    proc = _start_with_nofile(256, 4096, "--max-connections", "1000")
    try:
        assert "vigild ready" in proc.stderr.readline()
        limits = open(f"/proc/{proc.pid}/limits").read()
        line = [l for l in limits.splitlines() if l.startswith("Max open files")][0]
        assert line.split()[3:5] == ["4096", "4096"], line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_warns_with_both_numbers_when_max_connections_cannot_fit():
    import signal
    proc = _start_with_nofile(512, 512)  # default max_connections is 10000
    try:
        warning = proc.stderr.readline()
        assert "warning" in warning
        assert "max_connections 10000 needs about 10064 file descriptors, but RLIMIT_NOFILE is 512 (hard limit 512)" in warning
        assert "vigild ready" in proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_close_lines_are_written_whatever_the_log_level(vigild):
    daemon = vigild("--log-level", "error")

    async def scenario():
        async with websockets.connect(daemon.ws("?client=quiet")) as ws:
            await ws.close(1000)

    asyncio.run(scenario())
    daemon.wait_closes(1)
    daemon.stop()
    logs = daemon.json_logs()
    closes = [entry for entry in logs if entry.get("message_id") == "5bfe117f0f644f8c8afabe45870ad1cb"]
    assert len(closes) == 1 and closes[0]["ws_client"] == "quiet" and closes[0]["level"] == "info"
    chatter = [entry for entry in logs if entry not in closes and "vigild ready" not in entry["message"]]
    assert all(entry["level"] in ("error", "critical") for entry in chatter), chatter


# What systemd/vigil.yaml sets on purpose to another value than the default, as its header says.
UNIT_CHOICES = {"status_socket": "/run/vigil/status.sock"}  # in vigild.service's RuntimeDirectory


def test_example_config_lists_the_real_defaults():
    """systemd/vigil.yaml says its values are the defaults (but for UNIT_CHOICES); keep it true."""
    import os
    from conftest import ROOT
    example = os.path.join(ROOT, "systemd", "vigil.yaml")
    defaults = {line.split()[0]: line.split()[1] for line in run_vigild("--print-config").stdout.splitlines()}
    result = run_vigild("--config", example, "--print-config")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        key, value = line.split()[0], line.split()[1]
        if line.endswith(f"# config file {example}"):
            expected = UNIT_CHOICES.get(key, defaults[key])
            assert value == expected, f"{key}: example says {value}, expected {expected}"


def test_the_example_config_spells_out_every_default():
    import os
    from conftest import ROOT
    example = os.path.join(ROOT, "systemd", "vigil.yaml")
    result = run_vigild("--config", example, "--print-config")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        key = line.split()[0]
        assert line.endswith(f"# config file {example}"), f"systemd/vigil.yaml does not set {key}"
    defaults = run_vigild("--print-config").stdout.splitlines()
    assert [line.split()[0] for line in result.stdout.splitlines()] == [line.split()[0] for line in defaults]


def test_the_reload_lists_in_the_docs_come_from_the_catalog():
    """docs/systemd.md and the shipped vigil.yaml list the keys a reload applies; the list is
    written from the binary's own catalog (scripts/docs-from-code.py), never by hand."""
    import os
    import subprocess
    from conftest import ROOT, VIGILD
    check = subprocess.run([os.path.join(ROOT, "scripts", "docs-from-code.py"), VIGILD, "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    yaml = open(os.path.join(ROOT, "systemd", "vigil.yaml"), encoding="utf-8").read()
    for key in ("allowed_origins", "upstream", "reconnect_max", "drain_window", "status_token_file"):
        assert key in yaml.split("# (the list comes from")[0].split("these keys apply at once")[1], key


def test_every_cross_check_of_the_loader_is_documented():
    """Each key SettingsLoader.validate refuses is named in docs/configuration.md's cross-checks."""
    import os
    import re
    from conftest import ROOT
    source = open(os.path.join(ROOT, "Sources", "VigilConfig", "SettingsLoader.swift"), encoding="utf-8").read()
    validate = source.split("private static func validate(", 1)[1]
    keys = set(re.findall(r'throw fail\(\s*"(\w+)"', validate))
    assert len(keys) >= 20, keys
    doc = open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8").read()
    cross_checks = doc.split("The loader's cross-checks", 1)[1].split("## ", 1)[0]
    missing = sorted(key for key in keys if f"`{key}`" not in cross_checks)
    assert not missing, f"docs/configuration.md's cross-checks leave out {missing}"


def test_what_help_says_the_values_take_is_what_they_take():
    """--help's value rules against the parser: GiB sizes, yes/no/on/off switches, and the
    longest duration in a unit that exists (it said 24h, and h is not a unit)."""
    help_text = " ".join(run_vigild("--help").stdout.split())
    assert "sizes are bytes or take KiB, MiB or GiB" in help_text and "yes/no, on/off" in help_text
    result = run_vigild("--max-message", "1GiB", "--require-origin", "yes", "--status-insecure", "off",
                        "--close-timeout", "1440m", "--print-config")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert (lines["max_message"], lines["require_origin"], lines["status_insecure"]) == ("1GiB", "true", "false")
    too_long = run_vigild("--close-timeout", "1441m")
    assert too_long.returncode == 2 and "at most a day (1440m)" in too_long.stderr, too_long.stderr
    assert run_vigild("--close-timeout", "24h").returncode == 2
