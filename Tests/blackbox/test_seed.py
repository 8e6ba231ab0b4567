"""The seed's scenario: one client, many messages on one connection, no EOF after the first; and
the seed's own client (Go, golang.org/x/net/websocket) against a vigild at its defaults."""

import asyncio
import json
import os
import subprocess

import websockets

from conftest import ROOT

# Built by `make blackbox-test` from Tests/blackbox/seed-client (Go and x/net from Debian).
SEED_CLIENT = os.path.join(ROOT, ".build-go", "seed-client")


def test_one_client_many_commands_one_connection(vigild):
    daemon = vigild("--mode", "command")

    async def scenario():
        async with websockets.connect(daemon.ws("?client=seed")) as ws:
            for request_id in range(1, 1001):
                await ws.send(json.dumps({"requestID": request_id, "command": f"cmd-{request_id}"}))
                reply = json.loads(await ws.recv())
                assert reply == {"requestID": request_id, "success": True, "result": f"command 'cmd-{request_id}' processed"}
                if request_id == 1:
                    assert daemon.closes()["total"] == 0, "no EOF after the first message"
            await ws.send("not json at all")
            assert json.loads(await ws.recv()) == {"requestID": None, "success": False, "error": "not valid JSON"}
            await ws.send('{"command": "x"}')
            assert json.loads(await ws.recv()) == {"requestID": None, "success": False, "error": 'missing "requestID"'}
            await ws.send('{"requestID": "abc"}')
            assert json.loads(await ws.recv()) == {"requestID": "abc", "success": False, "error": 'missing "command"'}
            await ws.send('[1, 2]')
            assert json.loads(await ws.recv())["error"] == "expected a JSON object"
            live = daemon.get_json("/connections")["connections"]
            assert len(live) == 1 and live[0]["messages_in"] == 1004 and live[0]["client"] == "seed"

    asyncio.run(scenario())
    record = daemon.wait_closes(1)[0]
    assert (record["kind"], record["cause"], record["messages_in"], record["messages_out"]) == ("normal", "peer_close", 1004, 1004)


def test_the_seeds_go_client_at_the_defaults(vigild):
    """The client from the project's source document, as written there: x/net/websocket dialing
    with the origin http://ADDRESS/ (a trailing slash, as Go code writes it), a reader goroutine
    handing replies to the main loop, a command every 100 ms, ws.Close() after 20 replies. vigild
    at its defaults refused it with 403 (the path made the origin opaque)."""
    daemon = vigild("--mode", "command")
    address = f"127.0.0.1:{daemon.port}"
    run = subprocess.run([SEED_CLIENT, "-address", address, "-path", "/ws", "-replies", "20"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 20, lines
    for number, line in enumerate(lines, start=1):
        prefix = f"reply {number} "
        assert line.startswith(prefix), line
        assert json.loads(line[len(prefix):]) == {"requestID": number, "success": True,
                                                    "result": "command 'status' processed"}
    record = daemon.wait_closes(1)[0]
    # A tick may beat the 20th reply to the main loop on a busy machine: a 21st command then went out.
    assert record["kind"] == "normal" and record["messages_in"] >= 20 and record["messages_out"] >= 20, record
    assert daemon.metrics().get('vigil_handshakes_rejected_total{reason="origin"}', 0) == 0
