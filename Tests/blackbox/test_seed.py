"""The seed's scenario: one client, many messages on one connection, no EOF after the first."""

import asyncio
import json

import websockets


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
