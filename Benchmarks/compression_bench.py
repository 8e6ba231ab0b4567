"""permessage-deflate: what compression costs and saves. vigild against the gorilla baseline with
compression enabled (`-compression`, gorilla's EnableCompression at flate level 1, vigild's
default level), and vigild's proxy passing compressed messages through against nginx tunnelling
them, both in front of that baseline. Called by bench.py's "compression" scenario.

- echo: ECHO_N connections echoing ECHO_SIZE-byte JSON text (`vigil-load --payload json`: price
  quotes, about as compressible as real traffic), with and without `--deflate`: the server's CPU
  per 1000 messages, and the bytes on the client's link per round trip, read from the load
  process's /proc/PID/io (every byte it reads or writes is a WebSocket frame on that link).
- memory: RSS per idle connection with and without compression negotiated, before any message
  (`--mode hold`) and once each has made one round trip (`--mode greet`): at the defaults
  (vigild and its peer reset their contexts: one zlib stream per event loop serves every
  connection) and with `compression_context_takeover` on (each connection keeps streams of its
  own).
- proxy: the compressed echo through vigild's proxy and through nginx to the baseline: the
  proxy's CPU per 1000 relayed messages and the client's link bytes per round trip, next to
  the backend reached directly.
"""

import json
import time

from bench import BUDGET_FILE, Load, Server, log
from proxy_bench import Setup

ECHO_N = 50
ECHO_SIZE = 2048


def link_bytes(pid):
    """Bytes process `pid` has read and written through system calls (/proc/PID/io)."""
    fields = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def echo_through(url, b, seconds, deflate, cpu):
    """A compressible echo over ECHO_N connections to `url`: round trips, rate, the client link's
    bytes per round trip and `cpu()`'s seconds per 1000 messages (None: not measured)."""
    load = Load(b.load, url, "-c", str(ECHO_N), "--mode", "echo", "--payload", "json", "--message-size",
                str(ECHO_SIZE), "--duration", f"{seconds}s", *(["--deflate"] if deflate else []))
    try:
        load.event("connected", 60)
        start_cpu, start_bytes = cpu(), link_bytes(load.proc.pid)
        report = load.event("echo", seconds + 60)
        spent, moved = cpu() - start_cpu if start_cpu is not None else None, link_bytes(load.proc.pid) - start_bytes
        load.finish(60)
    finally:
        load.kill()
    messages = report["messages"]
    return {"round_trips": messages, "rate": report["rate"], "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"],
            "link_bytes_per_round_trip": moved / messages if messages else None, "cpu_s": spent,
            "cpu_ms_per_1000": spent * 1000 / (messages / 1000) if spent is not None and messages else None}


def echo(b, seconds, workdir):
    """vigild and the baseline, each with and without compression, on the same JSON stream."""
    result = {"n": ECHO_N, "size": ECHO_SIZE, "seconds": seconds}
    for kind in ("vigild", "baseline"):
        for deflate in (False, True):
            server = Server(kind, b, "30s", "10s", workdir, extra=["-compression"] if kind == "baseline" else [])
            try:
                entry = echo_through(server.url, b, seconds, deflate, server.cpu)
            finally:
                server.stop()
            result[f"{kind}_{'deflate' if deflate else 'plain'}"] = entry
            log(f"compression echo {kind} {'deflate' if deflate else 'plain'}: {entry['rate']:.0f} msg/s, "
                f"{entry['cpu_ms_per_1000']:.1f} ms CPU per 1000, {entry['link_bytes_per_round_trip']:.0f} B per round trip")
    return result


def memory(b, n, workdir):
    """vigild's RSS per idle connection, with compression negotiated or not: connections that
    have sent nothing (`--mode hold`), and connections that have each made one round trip
    (`--mode greet`), at the defaults and with context takeover."""
    result = {"n": n, "size": ECHO_SIZE}
    runs = (("plain", "hold", False, []), ("deflate", "hold", True, []),
            ("plain_used", "greet", False, []), ("deflate_used", "greet", True, []),
            ("deflate_context_takeover_used", "greet", True, ["--compression-context-takeover", "true"]))
    for name, mode, deflate, extra in runs:
        server = Server("vigild", b, "30s", "10s", workdir, extra=extra)
        try:
            time.sleep(1)
            before = server.rss()
            load = Load(b.load, server.url, "-c", str(n), "--mode", mode, "--payload", "json", "--message-size",
                        str(ECHO_SIZE), "--duration", "600s", "--no-close", *(["--deflate"] if deflate else []))
            try:
                connected = load.event("connected", 300)
                greeted = load.event("greeted", 120)["echoes"] if mode == "greet" else None
                time.sleep(3)  # let allocations settle, as the idle memory scenario does
                after = server.rss()
                rows = server.connections()
            finally:
                load.kill()
        finally:
            server.stop()
        result[name] = {"connected": connected["connections"], "greeted": greeted,
                        "negotiated": sum(1 for c in rows if c["compression"]),
                        "compressed_in": sum(c["compressed_in"] for c in rows), "rss_before": before,
                        "rss_after": after, "per_conn": (after - before) / n}
        log(f"compression memory {name} N={n}: {(after - before) / n / 1024:.2f} KiB/conn "
            f"({result[name]['negotiated']} negotiated, {result[name]['compressed_in']} compressed messages in)")
    plain, used = result["plain"]["per_conn"], result["plain_used"]["per_conn"]
    result["extra_kib"] = (result["deflate"]["per_conn"] - plain) / 1024
    result["used_extra_kib"] = (result["deflate_used"]["per_conn"] - used) / 1024
    result["context_takeover_extra_kib"] = (result["deflate_context_takeover_used"]["per_conn"] - used) / 1024
    return result


def proxy(b, seconds, workdir):
    """The compressed echo directly, through vigild's proxy and through nginx, to the baseline
    with compression on."""
    result = {"n": ECHO_N, "size": ECHO_SIZE, "seconds": seconds, "targets": {}}
    for target in ("direct", "vigild", "nginx"):
        try:
            setup = Setup(target, b, workdir, ECHO_N, backend_extra=["-compression"])
        except Exception as error:  # noqa: BLE001 - the report says why the row is missing
            result["targets"][target] = {"error": f"{type(error).__name__}: {error}"}
            continue
        try:
            cpu = setup.proxy.cpu if setup.proxy else (lambda: None)
            entry = echo_through(setup.url, b, seconds, True, cpu)
        finally:
            setup.stop()
        if entry["cpu_s"] is not None:
            entry["cpu_ms_per_1000"] = entry["cpu_s"] * 1000 / (2 * entry["round_trips"] / 1000)  # two relayed each
        result["targets"][target] = entry
        log(f"compression proxy {target}: {entry['rate']:.0f} round trips/s, "
            f"{entry['link_bytes_per_round_trip']:.0f} B per round trip on the client's link"
            + (f", {entry['cpu_ms_per_1000']:.1f} ms proxy CPU per 1000 relayed" if entry["cpu_s"] is not None else ""))
    return result


def compression(b, quick, seconds, workdir):
    """Every measurement; memory at the memory budget's size in quick runs too (its goal is a
    budget: fewer connections would drown one KiB in the RSS's noise)."""
    with open(BUDGET_FILE) as f:
        n = json.load(f)["connections"]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "echo": echo(b, seconds, workdir),
            "memory": memory(b, n, workdir), "proxy": proxy(b, seconds, workdir)}


def problems(result):
    """What a run must show: every measurement made, compression negotiated where offered (fewer
    bytes on the link than without), and the compressed connections' memory within the goal."""
    found = []
    echo_result = result["echo"]
    for kind in ("vigild", "baseline"):
        plain, deflate = echo_result[f"{kind}_plain"], echo_result[f"{kind}_deflate"]
        if None in (plain["cpu_ms_per_1000"], deflate["cpu_ms_per_1000"], deflate["link_bytes_per_round_trip"]):
            found.append(f"compression echo {kind}: no number")
        elif deflate["link_bytes_per_round_trip"] > 0.8 * plain["link_bytes_per_round_trip"]:
            found.append(f"compression echo {kind}: {deflate['link_bytes_per_round_trip']:.0f} B per round trip with "
                         f"deflate against {plain['link_bytes_per_round_trip']:.0f} B without: not negotiated?")
    mem = result["memory"]
    for name in ("plain", "deflate", "plain_used", "deflate_used", "deflate_context_takeover_used"):
        row = mem[name]
        if row["connected"] != mem["n"] or row["greeted"] not in (None, mem["n"]):
            found.append(f"compression memory {name}: {row['connected']} connected, {row['greeted']} round trips "
                         f"of {mem['n']}")
        if row["negotiated"] != (mem["n"] if name.startswith("deflate") else 0):
            found.append(f"compression memory {name}: permessage-deflate on {row['negotiated']} of {mem['n']}")
    if mem["deflate_used"]["compressed_in"] != mem["n"]:
        found.append(f"compression memory: {mem['deflate_used']['compressed_in']} compressed messages of {mem['n']}")
    with open(BUDGET_FILE) as f:
        budget = json.load(f)["compressed_connection_extra_kib"]
    for key, what in (("extra_kib", "an idle connection with permessage-deflate negotiated"),
                      ("used_extra_kib", "an idle connection that has exchanged a compressed message")):
        if mem[key] > budget:
            found.append(f"compression memory: {what} costs {mem[key]:.2f} KiB more than one without, over the "
                         f"budget of {budget} KiB (Benchmarks/memory-budget.json)")
    for target, entry in result["proxy"]["targets"].items():
        if "error" in entry:
            found.append(f"compression proxy {target}: {entry['error']}")
    direct = result["proxy"]["targets"].get("direct", {}).get("link_bytes_per_round_trip")
    through = result["proxy"]["targets"].get("vigild", {}).get("link_bytes_per_round_trip")
    if direct and through and through > 1.1 * direct:
        found.append(f"compression proxy: {through:.0f} B per round trip through vigild, {direct:.0f} B directly")
    return found
