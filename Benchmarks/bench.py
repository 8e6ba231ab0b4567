#!/usr/bin/env python3
"""vigil's benchmarks: vigild and the gorilla baseline, side by side, in one run.

Usage: bench.py --vigild BIN --load BIN --baseline BIN [--quick] --out FILE [--plots DIR]

Each scenario starts a fresh server, drives it with vigil-load (a separate process; the
heartbeat and the proxy's echo also with load-gorilla, an independent Go client), reads the
server's own numbers from /proc (RSS, utime+stime), from vigild's status API and from the
baseline's close lines, and prints vigild, baseline and their ratio. Counts that do not move with a noisy machine come from
strace (syscalls), an LD_PRELOAD malloc counter or the Go runtime (heap allocations) and
callgrind (instructions). The report is Markdown;
the commentary in Benchmarks/commentary.md is appended to it. --quick runs small sizes so CI
keeps the harness working: it checks that every scenario ran and produced numbers (and that
close counts are exact), never a timing.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def proc_rss(pid):
    """Resident set size in bytes (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def proc_cpu(pid):
    """utime + stime of the process, in seconds."""
    return sum(proc_cpu_split(pid))


def proc_cpu_split(pid):
    """(utime, stime) of the process, in seconds: user space, and the kernel on its behalf."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def proc_context_switches(pid):
    """Context switches of every thread of the process so far: (voluntary, involuntary)."""
    voluntary = involuntary = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return voluntary, involuntary


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[index]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, what, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


class Server:
    """One server process under test: vigild or the baseline."""

    def __init__(self, kind, binaries, ping, pong, workdir, port=0, env=None, wrapper=(), extra=()):
        self.kind = kind
        self.output = open(os.path.join(workdir, f"{kind}-{time.monotonic_ns()}.log"), "w+")
        if kind == "vigild":
            args = [binaries.vigild, "--listen", f"127.0.0.1:{port}", "--status-listen", "127.0.0.1:0",
                    "--log", "stderr", "--max-connections", "20000",
                    "--ping-interval", ping, "--pong-timeout", pong]
        else:
            args = [binaries.baseline, "-addr", f"127.0.0.1:{port}", "-ping-interval", ping, "-pong-timeout", pong]
        args += extra
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*wrapper, *args], stdout=self.output, stderr=self.output,
                                     env={**os.environ, **(env or {})})
        pattern = (r"vigild ready ws=(wss?)://([\d.]+:\d+)/ws status=(http://[\d.:]+)" if kind == "vigild"
                   else r"()ready ([\d.]+:\d+)")
        match = wait_until(lambda: re.search(pattern, self.text()), f"{kind} to listen", 120 if wrapper else 30)
        self.address = match.group(2)
        self.status_url = match.group(3) if kind == "vigild" else None
        self.url = f"{match.group(1) or 'ws'}://{self.address}/ws"  # wss:// with a certificate

    def text(self):
        self.output.flush()
        with open(self.output.name) as f:
            return f.read()

    @property
    def pid(self):
        return self.proc.pid

    def rss(self):
        return proc_rss(self.pid)

    def cpu(self):
        return proc_cpu(self.pid)

    def get(self, path):
        with urllib.request.urlopen(self.status_url + path, timeout=30) as response:
            return response.read()

    def connections(self):
        """Every live connection's record from /connections, following its pages."""
        rows, path = [], "/connections"
        while path:
            document = json.loads(self.get(path))
            rows += document["connections"]
            path = document["next"]
        return rows

    def close_count(self):
        """Closes the server has recorded: vigild's registry, the baseline's close lines."""
        if self.kind == "vigild":
            return json.loads(self.get("/status"))["closes_total"]
        return len(re.findall(r"^close \d+ ", self.text(), re.M))

    def close_times(self):
        """Wall-clock close times (ns since the epoch), with each close's cause."""
        if self.kind == "vigild":
            records, path = [], "/closes?limit=1000"  # the API's largest page; `next` pages on
            while path:
                document = json.loads(self.get(path))
                records += document["closes"]
                path = document["next"]
            return [(rfc3339_ns(c["closed_at"]), c["cause"]) for c in records]
        return [(int(n), cause) for n, cause in re.findall(r"^close (\d+) (\S+)", self.text(), re.M)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.close()


def rfc3339_ns(text):
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp() * 1000) * 1_000_000


class Load:
    """A vigil-load process, its JSON lines collected as they come."""

    def __init__(self, binary, url, *args):
        self.proc = subprocess.Popen([binary, "--url", url, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.events = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def event(self, name, timeout):
        return wait_until(lambda: next((e for e in list(self.events) if e["event"] == name), None),
                          f"vigil-load's {name} event (got {[e['event'] for e in self.events]})", timeout)

    def latest(self, name):
        return next((e for e in reversed(list(self.events)) if e["event"] == name), None)

    def fresh(self, name, timeout=10):
        """The next `name` event to arrive from now on: a count read at this moment, not up to a
        progress interval ago."""
        seen = len(self.events)
        return wait_until(lambda: next((e for e in list(self.events)[seen:] if e["event"] == name), None),
                          f"a fresh {name} line from the load", timeout)

    def finish(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        return self.latest("done")

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)


def ratio(vigild, baseline):
    if vigild is None or baseline in (None, 0):
        return None
    return vigild / baseline


# ---------------------------------------------------------------------------------------------
# Scenarios


def idle_memory(b, sizes, workdir):
    rows = []
    for n in sizes:
        row = {"n": n}
        for kind in ("vigild", "baseline"):
            server = Server(kind, b, "30s", "10s", workdir)
            time.sleep(1)
            before = server.rss()
            load = Load(b.load, server.url, "-c", str(n), "--duration", "600s", "--no-close")
            connected = load.event("connected", 300)
            time.sleep(3)  # let allocations settle
            after = server.rss()
            row[kind] = {"rss_before": before, "rss_after": after, "per_conn": (after - before) / n,
                         "connected": connected["connections"], "connect_s": connected["seconds"]}
            load.kill()
            server.stop()
            log(f"idle memory {kind} N={n}: {(after - before) / n / 1024:.2f} KiB/conn "
                f"({connected['connections']} connected)")
        rows.append(row)
    return rows


BUDGET_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "memory-budget.json")


def memory_budget(b, workdir):
    """vigild's RSS per idle connection and per idle proxied pair, at the sizes the budget file
    names, against the budget (a quick run fails above it)."""
    with open(BUDGET_FILE) as f:
        budget = json.load(f)
    n = budget["connections"]
    server = Server("vigild", b, "30s", "10s", workdir)
    try:
        time.sleep(1)
        before = server.rss()
        load = Load(b.load, server.url, "-c", str(n), "--duration", "600s", "--no-close")
        try:
            connected = load.event("connected", 300)
            time.sleep(3)  # let allocations settle
            after = server.rss()
        finally:
            load.kill()
    finally:
        server.stop()
    connection = {"n": n, "connected": connected["connections"], "kib": (after - before) / n / 1024,
                  "budget_kib": budget["idle_connection_kib"]}
    import proxy_bench  # noqa: PLC0415 - proxy_bench imports this module
    pair = proxy_bench.memory_run("vigild", b, budget["pairs"], workdir, budget["pairs"])
    pair = {"n": pair["n"], "connected": pair["connected"], "backend_legs": pair["backend_legs"],
            "kib": pair["per_pair"] / 1024, "budget_kib": budget["idle_proxy_pair_kib"]}
    log(f"memory budget: {connection['kib']:.2f} KiB per idle connection (budget {connection['budget_kib']}), "
        f"{pair['kib']:.2f} KiB per idle proxied pair (budget {pair['budget_kib']})")
    return {"connection": connection, "pair": pair}


def budget_problems(result):
    problems = []
    for key, what in (("connection", "idle connection"), ("pair", "idle proxied pair")):
        entry = result[key]
        if entry["connected"] != entry["n"] or entry.get("backend_legs", entry["n"]) != entry["n"]:
            problems.append(f"memory budget: {entry['connected']} of {entry['n']} {what}s connected")
        elif entry["kib"] > entry["budget_kib"]:
            problems.append(f"memory budget: {entry['kib']:.2f} KiB per {what} is over the budget of "
                            f"{entry['budget_kib']} KiB (Benchmarks/memory-budget.json; raise it in a commit "
                            "that says why)")
    return problems


def scale(b, n, ping, workdir):
    """The fd limit's worth of supervised connections at the default ping interval, held until
    every connection has been pinged: does vigild keep up?"""
    server = Server("vigild", b, ping, "10s", workdir)
    load = Load(b.load, server.url, "-c", str(n), "--duration", "600s", "--no-close", "--progress", "1s")
    connected = load.event("connected", 300)
    time.sleep(parse_seconds(ping) + 5)  # every connection pinged at least once
    rtts = [c["rtt_ms"] for c in server.connections() if c["rtt_ms"] is not None]
    live = json.loads(server.get("/status"))["connections"]
    result = {"n": n, "ping_interval": ping, "connected": connected["connections"], "live": live,
              "rtt_samples": len(rtts), "rtt_p50_ms": percentile(rtts, 50), "rtt_p99_ms": percentile(rtts, 99),
              "rtt_max_ms": max(rtts) if rtts else None, "rss": server.rss(), "closes": server.close_count()}
    load.kill()
    server.stop()
    log(f"scale: {live} live, p99 RTT {result['rtt_p99_ms']} ms over {len(rtts)} connections")
    return result


def syscall_counts(pid, seconds, workdir, mark=lambda: None):
    """Syscalls made by every thread of a running process over `seconds`: `strace -c -f` attached
    to it, then interrupted (it detaches and prints its summary). `mark` is called once every
    thread is attached and again just before the interrupt, so the caller can count its units of
    work over exactly the traced window. {"total", "calls": {name: n}, "marks": [m1, m2]}, or
    {"error"} when tracing is not possible here."""
    path = os.path.join(workdir, f"strace-{pid}-{time.monotonic_ns()}.txt")
    try:
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", path, "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        return {"error": "strace not installed"}
    # strace prints "Process N attached with M threads" once it has attached to all of them
    # (a single-threaded process: "Process N attached").
    errors = [tracer.stderr.readline()]
    first = mark()
    time.sleep(seconds)
    last = mark()
    tracer.send_signal(signal.SIGINT)
    try:
        _, rest = tracer.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        tracer.kill()
        return {"error": "strace did not detach"}
    errors = "".join(errors) + rest
    calls = {}
    try:
        rows = open(path).read().splitlines()
    except FileNotFoundError:
        return {"error": f"strace wrote nothing: {errors.strip()[:200]}"}
    for row in rows:
        fields = row.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    if not calls:
        return {"error": f"strace counted nothing: {errors.strip()[:200]}"}
    return {"total": sum(calls.values()), "calls": calls, "marks": [first, last]}


def without_debug_info(binary, workdir):
    """A copy of `binary` without its DWARF sections: Debian 12's valgrind (3.19) gives up on the
    DWARF 5 the Swift toolchain writes. Symbols stay, so a profile still names functions."""
    copy = os.path.join(workdir, os.path.basename(binary) + "-nodebug")
    if not os.path.exists(copy):
        subprocess.run(["objcopy", "--strip-debug", binary, copy], check=True)
    return copy


class ServerCounts:
    """What a server has done so far, by its own count: heap allocations, and ping round trips
    completed (pongs matched). vigild's allocations: Benchmarks/malloc-count, preloaded, keeps the
    count in a file mapped shared (every malloc, calloc, posix_memalign…, Swift's included); its
    round trips: the ping RTT histogram's count on /metrics. The Go baseline's heap is not malloc's,
    so it answers SIGUSR1 with its runtime's count of heap objects allocated
    (runtime.MemStats.Mallocs), the same question asked of Go's allocator, and its pongs.

    Round trips are counted by the server, not the load: pings go out in bursts (every connection
    opened in the same second is pinged in the same tick), and a window that is a progress line
    late on the load's side can count a burst fewer or more."""

    MAGIC = 0x766967696C6D616C

    def __init__(self, kind, library, workdir):
        self.kind = kind
        self.path = os.path.join(workdir, f"malloc-{time.monotonic_ns()}.bin")
        self.env = {"LD_PRELOAD": library, "MALLOC_COUNT_FILE": self.path} if kind == "vigild" and library else {}

    def read(self, server):
        """{"allocations", "round_trips"} now (allocations None when not countable)."""
        if self.kind == "vigild":
            allocations = None
            if self.env:
                with open(self.path, "rb") as f:
                    magic, count, _, _ = struct.unpack("<4Q", f.read(32))
                allocations = count if magic == self.MAGIC else None
            metrics = server.get("/metrics").decode()
            round_trips = int(float(re.search(r'^vigil_ping_rtt_seconds_count\{leg="client"\} (\S+)', metrics, re.M).group(1)))
            return {"allocations": allocations, "round_trips": round_trips}
        pattern = re.compile(r"^mallocs (\d+) frees \d+ pongs (\d+)", re.M)
        seen = len(pattern.findall(server.text()))
        os.kill(server.pid, signal.SIGUSR1)
        wait_until(lambda: len(pattern.findall(server.text())) > seen, "the baseline's counts", 10)
        allocations, pongs = pattern.findall(server.text())[-1]
        return {"allocations": int(allocations), "round_trips": int(pongs)}


def load_args(mode, n, seconds):
    """vigil-load (or load-gorilla) arguments for a counting run: `hold` answers pings, `echo`
    keeps one 64-byte message in flight per connection; progress lines every 100 ms."""
    extra = ["--mode", "echo", "--message-size", "64"] if mode == "echo" else []
    return ["-c", str(n), *extra, "--duration", f"{int(seconds) + 60}s", "--progress", "100ms"]


def steady_counts(b, kind, mode, n, seconds, workdir):
    """What one unit of work costs (a ping round trip in `hold` mode, an echoed message in `echo`
    mode) in syscalls, all threads (`strace -c -f`), and in heap allocations, counted together over
    one window of steady state in a server run of its own: tracing slows the server, which moves
    times but not what a unit costs, and the timed runs stay untraced."""
    counted = ServerCounts(kind, b.malloc_count, workdir)
    server = Server(kind, b, "1s" if mode == "hold" else "30s", "10s", workdir, env=counted.env)
    load = Load(b.load, server.url, *load_args(mode, n, seconds))

    def mark():
        # Echoes are steady (one in flight per connection), so the load's count serves, read from
        # a progress line printed after this moment (they come every 100 ms).
        echoes = load.fresh("progress")["echoes"] if mode == "echo" else None
        counts = counted.read(server)
        return counts["round_trips"] if mode == "hold" else echoes, counts["allocations"]

    try:
        load.event("connected", 300)
        time.sleep(2)
        # Units, allocations and syscalls over one window: the marks are taken once strace has
        # attached to every thread and again just before it is interrupted.
        traced = syscall_counts(server.pid, seconds, workdir, mark=mark)
        marks = traced.get("marks") or [(0, None), (0, None)]
        units = marks[1][0] - marks[0][0]
        heap_before, heap_after = marks[0][1], marks[1][1]
    finally:
        load.kill()
        server.stop()
    entry = {"n": n, "window_s": seconds, "units": units, "syscalls": traced}
    if "total" in traced and units:
        traced.update(per_unit=traced["total"] / units,
                      top={name: count / units for name, count in
                           sorted(traced["calls"].items(), key=lambda item: -item[1])[:4]})
    if heap_before is not None and heap_after is not None and units:
        entry["allocations"] = heap_after - heap_before
        entry["allocations_per_unit"] = (heap_after - heap_before) / units
    else:
        entry["allocations_error"] = "no allocation counter for this server"
    log(f"counts {mode} {kind}: {fmt(traced.get('per_unit'), 2)} syscalls, "
        f"{fmt(entry.get('allocations_per_unit'), 2)} allocations per unit over {units} {traced.get('error', '')}")
    return entry


def instruction_counts(b, kind, mode, n, seconds, workdir):
    """Instructions per unit of work, all threads: the server under valgrind's callgrind with
    instrumentation off until the load is steady, then on, zeroed, and dumped after `seconds`.
    Repeatable whatever else the machine does (valgrind serialises threads and counts guest
    instructions); the server runs some 50× slower, so N is smaller than the timed runs'."""
    out = os.path.join(workdir, f"callgrind-{kind}-{mode}-{time.monotonic_ns()}")
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p"]
    env = {}
    if kind == "vigild":
        b = argparse.Namespace(**{**vars(b), "vigild": without_debug_info(b.vigild, workdir)})
    else:
        # Go's asynchronous preemption signals (SIGURG) trip an assertion in callgrind's signal
        # handling (threads.c:247) under the echo load; goroutines still yield at calls.
        env = {"GODEBUG": "asyncpreemptoff=1"}
    try:
        server = Server(kind, b, "1s" if mode == "hold" else "30s", "10s", workdir, env=env, wrapper=wrapper)
    except Exception as error:  # valgrind missing, or the binary does not run under it
        return {"error": f"did not start under callgrind: {error}"}

    def control(option):
        done = subprocess.run(["callgrind_control", option, str(server.pid)], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind_control {option}: {done.stdout.strip()[-200:]} {done.stderr.strip()[-200:]}")

    def units():
        # From the load here: the Go baseline does not answer SIGUSR1 under valgrind, and a
        # server this slow accepts slowly, so its pings are spread over the second, not in bursts.
        return load.latest("progress")["pongs_sent" if mode == "hold" else "echoes"]

    load = Load(b.load, server.url, *load_args(mode, n, seconds + 20))
    try:
        load.event("connected", 300)
        control("--instr=on")
        time.sleep(3)  # past the translation of the hot paths
        first = units()
        control("--zero")
        time.sleep(seconds)
        control("--dump")
        counted_units = units() - first
        totals = []
        for path in glob.glob(out + ".*"):
            match = re.search(r"^(?:summary|totals): (\d+)", open(path).read(), re.M)
            if match:
                totals.append((os.path.getmtime(path), int(match.group(1))))
        if not totals:
            raise RuntimeError("callgrind wrote no dump")
        instructions = max(totals)[1]
    except Exception as error:
        return {"error": str(error)[:300]}
    finally:
        load.kill()
        server.stop()
    result = {"n": n, "seconds": seconds, "units": counted_units, "instructions": instructions,
              "per_unit": instructions / counted_units if counted_units else None}
    log(f"instructions {mode} {kind}: {fmt(result['per_unit'], 0)} per unit over {counted_units}")
    return result


def counts(b, beat_n, echo_n, seconds, callgrind_n, callgrind_seconds, workdir):
    """Counts, not times: per ping round trip and per echoed message, for vigild and the baseline.
    Echo is counted at the timed echo's load (`echo_n` connections) and again over as many
    connections as the heartbeat (`echo_many`: syscalls and allocations)."""
    result = {}
    for mode, n in (("hold", beat_n), ("echo", echo_n)):
        for kind in ("vigild", "baseline"):
            entry = steady_counts(b, kind, mode, n, seconds, workdir)
            entry["instructions"] = instruction_counts(b, kind, mode, callgrind_n if mode == "hold" else echo_n,
                                                       callgrind_seconds, workdir)
            result.setdefault(mode, {})[kind] = entry
    for kind in ("vigild", "baseline"):
        result.setdefault("echo_many", {})[kind] = steady_counts(b, kind, "echo", beat_n, seconds, workdir)
    return result


def heartbeat_cost(b, n, window, workdir):
    """CPU per ping round trip, timed with vigil-load and again with load-gorilla (an independent
    load generator in Go on gorilla/websocket), each against both servers, untraced."""
    result = {"n": n, "window_s": window, "ping_interval": "1s"}
    for generator, binary in (("vigil-load", b.load), ("load-gorilla", b.load_go)):
        for kind in ("vigild", "baseline"):
            server = Server(kind, b, "1s", "10s", workdir)
            load = Load(binary, server.url, "-c", str(n), "--duration", f"{int(window + 30)}s", "--progress", "100ms")
            load.event("connected", 300)
            time.sleep(2)
            start_pongs = load.latest("progress")["pongs_sent"]
            (start_user, start_sys), started = proc_cpu_split(server.pid), time.monotonic()
            start_switches = proc_context_switches(server.pid)
            load_cpu = proc_cpu(load.proc.pid)
            time.sleep(window)
            (end_user, end_sys), elapsed = proc_cpu_split(server.pid), time.monotonic() - started
            end_switches = proc_context_switches(server.pid)
            load_cpu = proc_cpu(load.proc.pid) - load_cpu
            start_cpu, end_cpu = start_user + start_sys, end_user + end_sys
            end_pongs = load.latest("progress")["pongs_sent"]
            round_trips = end_pongs - start_pongs
            entry = {"cpu_s": end_cpu - start_cpu, "round_trips": round_trips, "elapsed_s": elapsed,
                     "load_cpu_s": load_cpu, "user_s": end_user - start_user, "sys_s": end_sys - start_sys,
                     "switches_per_round_trip": (sum(end_switches) - sum(start_switches)) / round_trips if round_trips else None,
                     "cpu_ms_per_1000": (end_cpu - start_cpu) * 1000 / (round_trips / 1000) if round_trips else None}
            if kind == "vigild":
                rtts = [c["rtt_ms"] for c in server.connections() if c["rtt_ms"] is not None]
                entry.update(rtt_p50_ms=percentile(rtts, 50), rtt_p99_ms=percentile(rtts, 99), rtt_samples=len(rtts))
            if generator == "vigil-load":
                result[kind] = entry
            else:
                result.setdefault("independent", {})[kind] = entry
            load.kill()
            server.stop()
            log(f"heartbeat {kind} ({generator}): {fmt(entry['cpu_ms_per_1000'], 2)} ms CPU per 1000 round trips "
                f"({round_trips} in {elapsed:.1f}s; the load used {load_cpu:.2f} s)")
    return result


def detection(b, n, ping, pong, workdir, frozen):
    bound_ms = (parse_seconds(ping) + parse_seconds(pong)) * 1000
    result = {"n": n, "ping_interval": ping, "pong_timeout": pong, "bound_ms": bound_ms, "frozen": frozen}
    for kind in ("vigild", "baseline"):
        server = Server(kind, b, ping, pong, workdir)
        if frozen:
            load = Load(b.load, server.url, "-c", str(n), "--duration", "600s", "--no-close")
            load.event("connected", 300)
            time.sleep(parse_seconds(ping) * 1.5)  # a ping or two answered
            frozen_at = time.time_ns()
            os.kill(load.proc.pid, signal.SIGSTOP)
            wait_until(lambda: server.close_count() >= n, "every connection closed", bound_ms / 1000 + 60)
            load.kill()
            latencies = [(t - frozen_at) / 1e6 for t, _ in server.close_times()]
        else:
            load = Load(b.load, server.url, "-c", str(n), "--no-pong", "--duration", "600s")
            load.event("connected", 300)
            done = load.finish(bound_ms / 1000 + 120)
            wait_until(lambda: server.close_count() >= n, "every close recorded", 30)
            hist = done["detection"]
            latencies = None
            result.setdefault("client_side", {})[kind] = hist
        time.sleep(0.5)
        closes = server.close_times()
        causes = {}
        for _, cause in closes:
            causes[cause] = causes.get(cause, 0) + 1
        entry = {"closes": len(closes), "causes": causes}
        if latencies is not None:
            entry.update(p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99), max_ms=max(latencies))
        else:
            entry.update(p50_ms=hist["p50_ms"], p99_ms=hist["p99_ms"], max_ms=hist["max_ms"], count=hist["count"])
        result[kind] = entry
        server.stop()
        log(f"detection {'frozen' if frozen else 'no-pong'} {kind}: max {entry['max_ms']:.1f} ms, closes {causes}")
    return result


def echo(b, n, size, seconds, workdir):
    result = {"n": n, "size": size, "seconds": seconds}
    for kind in ("vigild", "baseline"):
        server = Server(kind, b, "30s", "10s", workdir)
        load = Load(b.load, server.url, "-c", str(n), "--mode", "echo", "--message-size", str(size),
                    "--duration", f"{seconds}s")
        load.event("connected", 60)
        start_cpu = server.cpu()
        report = load.event("echo", seconds + 60)
        cpu = server.cpu() - start_cpu
        load.finish(60)
        result[kind] = {"rate": report["rate"], "messages": report["messages"], "p50_ms": report["p50_ms"],
                        "p99_ms": report["p99_ms"], "cpu_s": cpu,
                        "cpu_ms_per_1000": cpu * 1000 / (report["messages"] / 1000) if report["messages"] else None}
        server.stop()
        log(f"echo {kind}: {report['rate']:.0f} msg/s, p99 {report['p99_ms']} ms")
    return result


def crosscheck(b, seconds, workdir):
    """vigil-load's echo numbers against an independent client (Python websockets), same server,
    one connection each: the latency they measure should agree."""
    import asyncio
    import websockets

    async def python_echo(url):
        latencies = []
        async with websockets.connect(url, ping_interval=None) as ws:
            message = b"x" * 64
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.perf_counter()
                await ws.send(message)
                await ws.recv()
                latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    server = Server("vigild", b, "30s", "10s", workdir)
    load = Load(b.load, server.url, "-c", "1", "--mode", "echo", "--message-size", "64", "--duration", f"{seconds}s")
    ours = load.event("echo", seconds + 30)
    load.finish(30)
    theirs = asyncio.run(python_echo(server.url))
    server.stop()
    result = {"seconds": seconds,
              "vigil_load": {"rate": ours["rate"], "p50_ms": ours["p50_ms"], "p99_ms": ours["p99_ms"]},
              "python_websockets": {"rate": len(theirs) / seconds, "p50_ms": percentile(theirs, 50),
                                    "p99_ms": percentile(theirs, 99)}}
    log(f"cross-check: vigil-load p50 {ours['p50_ms']} ms, python websockets p50 {percentile(theirs, 50):.3f} ms")
    return result


def startup(b, runs, workdir):
    result = {"runs": runs}
    notify_dir = tempfile.mkdtemp(prefix="vigil-bench-")
    notify_path = os.path.join(notify_dir, "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(10)
    for kind in ("vigild", "baseline"):
        to_ready, to_accept = [], []
        for _ in range(runs):
            port = free_port()
            if kind == "vigild":
                args = [b.vigild, "--listen", f"127.0.0.1:{port}", "--status-listen", "127.0.0.1:0", "--log", "stderr"]
                env = {**os.environ, "NOTIFY_SOCKET": notify_path}
            else:
                args = [b.baseline, "-addr", f"127.0.0.1:{port}"]
                env = dict(os.environ)
            started = time.monotonic()
            proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    to_accept.append((time.monotonic() - started) * 1000)
                    break
                except OSError:
                    if time.monotonic() - started > 10:
                        raise RuntimeError(f"{kind} never accepted")
                    time.sleep(0.0005)
            if kind == "vigild":
                while True:
                    data = listener.recv(4096).decode()
                    if "READY=1" in data:
                        to_ready.append((time.monotonic() - started) * 1000)
                        break
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        result[kind] = {"to_accept_ms": statistics.median(to_accept),
                        "to_ready_ms": statistics.median(to_ready) if to_ready else None}
        log(f"start-up {kind}: accepting after {result[kind]['to_accept_ms']:.1f} ms (median of {runs})")
    listener.close()
    os.unlink(notify_path)
    os.rmdir(notify_dir)
    return result


def close_burst(b, n, workdir):
    result = {"n": n}
    for kind in ("vigild", "baseline"):
        server = Server(kind, b, "30s", "10s", workdir)
        load = Load(b.load, server.url, "-c", str(n), "--duration", "600s", "--no-close")
        load.event("connected", 300)
        time.sleep(1)
        started = time.monotonic()
        load.kill()  # every socket of the load process closes at once
        wait_until(lambda: server.close_count() >= n, f"{n} closes", 120)
        in_registry = time.monotonic() - started
        entry = {"all_recorded_s": in_registry, "closes": server.close_count()}
        if kind == "vigild":
            metrics = server.get("/metrics").decode()
            total = sum(float(v) for v in re.findall(r"^vigil_closes_total\{[^}]*\} (\S+)", metrics, re.M))
            entry["in_metrics"] = int(total)
            entry["in_closes"] = json.loads(server.get("/closes?limit=1"))["total"]
        result[kind] = entry
        server.stop()
        log(f"close burst {kind}: {n} closes recorded after {in_registry:.2f}s")
    return result


def proxies(b, sizes, seconds, workdir, quick):
    """vigild --mode proxy against nginx, HAProxy and Caddy, and the backend reached directly:
    Benchmarks/proxy_bench.py, which imports this file's helpers (hence imported here)."""
    import proxy_bench
    return proxy_bench.proxy_comparison(b, sizes, seconds, workdir, quick)


def compression(b, quick, seconds, workdir):
    """permessage-deflate against gorilla's and through the proxy against nginx:
    Benchmarks/compression_bench.py, which imports this file's helpers (hence imported here)."""
    import compression_bench
    return compression_bench.compression(b, quick, seconds, workdir)


def compression_problems(result):
    import compression_bench
    return compression_bench.problems(result)


def tls(b, quick, seconds, workdir):
    """TLS on the listener against nginx terminating it: Benchmarks/tls_bench.py, which imports
    this file's helpers (hence imported here)."""
    import tls_bench
    return tls_bench.tls(b, quick, seconds, workdir)


def tls_problems(result):
    import tls_bench
    return tls_bench.problems(result)


def pool(b, quick, seconds, workdir):
    """A pool of three upstreams behind vigild against nginx's upstream block of the same three:
    Benchmarks/pool_bench.py, which imports this file's helpers (hence imported here)."""
    import pool_bench
    return pool_bench.pool(b, quick, seconds, workdir)


def pool_problems(result):
    import pool_bench
    return pool_bench.problems(result)


def parse_seconds(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


# ---------------------------------------------------------------------------------------------
# Report


def kib(value):
    return f"{value / 1024:.2f}"


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}×"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    memory = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0) / 1024 / 1024
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "kernel": platform.release(), "swift": swift,
            "go": go, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}


def linear_fit(points):
    """Least-squares slope and intercept of (n, rss) points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0
    return slope, my - slope * mx


def plot(memory, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for kind, label, style in (("vigild", "vigild", "o-"), ("baseline", "gorilla baseline", "s--")):
        xs = [0] + [row["n"] for row in memory]
        ys = [memory[0][kind]["rss_before"] / 2**20] + [row[kind]["rss_after"] / 2**20 for row in memory]
        ax.plot(xs, ys, style, label=label)
    ax.set_xlabel("idle connections (ping every 30 s)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("Server memory against open connections")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def report(results, args, commands, plot_name):
    m = results["machine"]
    lines = [
        "# vigil benchmarks",
        "",
        f"Run on {results['date']} ({'quick' if args.quick else 'full'} run) by `make bench"
        f"{' QUICK=1' if args.quick else ''}`, on one machine: {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_gib']:.0f} GiB, Linux {m['kernel']}; {m['swift']}; {m['go']}. Client and server share "
        f"the two cores, so ratios within one run matter, not absolute times. RLIMIT_NOFILE "
        f"{m['nofile'][0]}/{m['nofile'][1]} (soft/hard): one process holds at most about "
        f"{m['nofile'][1] - 10} sockets (vigild {m['nofile'][1] - 128}: it keeps 128 descriptors for the status API "
        "and the service manager), and this sandbox cannot raise the hard limit.",
        "",
        "Servers: `vigild` (release, static Swift runtime) and `Benchmarks/baseline-gorilla` (Go, gorilla/websocket "
        "1.5.0 from Debian: read deadline of P + T extended by the pong handler, ticker pings under a write "
        "deadline). Load: `vigil-load` (release), a separate process, on vigil's client framing core; the heartbeat "
        "is timed again with `Benchmarks/load-gorilla` (Go, gorilla/websocket), an independent client.",
        "",
    ]
    memory = results["memory"]
    lines += ["## 1. Idle memory", "",
              "RSS per connection = (RSS with N open − RSS before) / N, ping interval 30 s.", "",
              "| N | vigild KiB/conn | baseline KiB/conn | ratio | vigild RSS MiB | baseline RSS MiB |",
              "|---|---|---|---|---|---|"]
    for row in memory:
        v, g = row["vigild"], row["baseline"]
        lines.append(f"| {row['n']} | {kib(v['per_conn'])} | {kib(g['per_conn'])} | "
                     f"{fmt_ratio(ratio(v['per_conn'], g['per_conn']))} | {v['rss_after'] / 2**20:.1f} | "
                     f"{g['rss_after'] / 2**20:.1f} |")
    fits = {}
    for kind in ("vigild", "baseline"):
        points = [(0, memory[0][kind]["rss_before"])] + [(row["n"], row[kind]["rss_after"]) for row in memory]
        fits[kind] = linear_fit(points)
    lines += ["", f"![RSS against N]({plot_name})" if plot_name else "", ""]
    lines += ["Measured slope (least squares over the points above) and what it predicts:", "",
              "| | slope KiB/conn | at 100k | at 1M |", "|---|---|---|---|"]
    for kind in ("vigild", "baseline"):
        slope, intercept = fits[kind]
        lines.append(f"| {kind} | {slope / 1024:.2f} | {(intercept + slope * 100_000) / 2**30:.2f} GiB | "
                     f"{(intercept + slope * 1_000_000) / 2**30:.2f} GiB |")
    results["fits"] = {k: {"slope_bytes": v[0], "intercept_bytes": v[1]} for k, v in fits.items()}
    budget = results.get("budget")
    if budget:
        c, p = budget["connection"], budget["pair"]
        lines += ["", "The idle-memory budget (`Benchmarks/memory-budget.json`; a run over it fails):", "",
                  "| | measured at | KiB | budget KiB |", "|---|---|---|---|",
                  f"| per idle connection | {c['n']} connections | {c['kib']:.2f} | {c['budget_kib']} |",
                  f"| per idle proxied pair | {p['n']} pairs | {p['kib']:.2f} | {p['budget_kib']} |"]

    sc = results["scale"]
    lines += ["", f"At the fd limit: {sc['connected']} connections held by vigild with a ping every {sc['ping_interval']} "
              f"(about {sc['connected'] / parse_seconds(sc['ping_interval']):.0f} round trips a second): {sc['live']} live "
              "once every connection had been pinged, "
              f"RSS {sc['rss'] / 2**20:.0f} MiB, ping RTT over {sc['rtt_samples']} connections p50 {fmt(sc['rtt_p50_ms'], 3)} ms, "
              f"p99 {fmt(sc['rtt_p99_ms'], 3)} ms, max {fmt(sc['rtt_max_ms'], 3)} ms; {sc['closes']} closes."]

    h = results["heartbeat"]
    lines += ["", "## 2. Heartbeat cost", "",
              f"{h['n']} connections, ping every 1 s, CPU (utime + stime from /proc) over {h['window_s']} s; round trips "
              "counted by the load generator (pongs it sent).", "",
              "| | vigild | baseline | ratio |", "|---|---|---|---|",
              f"| CPU ms per 1000 ping round trips | {fmt(h['vigild']['cpu_ms_per_1000'], 2)} | "
              f"{fmt(h['baseline']['cpu_ms_per_1000'], 2)} | "
              f"{fmt_ratio(ratio(h['vigild']['cpu_ms_per_1000'], h['baseline']['cpu_ms_per_1000']))} |",
              f"| round trips in the window | {h['vigild']['round_trips']} | {h['baseline']['round_trips']} | |",
              f"| ping RTT vigild records, p50 / p99 | {fmt(h['vigild']['rtt_p50_ms'], 3)} / "
              f"{fmt(h['vigild']['rtt_p99_ms'], 3)} ms | n/a | |"]
    ind = h.get("independent", {})
    if ind:
        lines.append(f"| CPU ms per 1000, load-gorilla as the client | {fmt(ind['vigild']['cpu_ms_per_1000'], 2)} | "
                     f"{fmt(ind['baseline']['cpu_ms_per_1000'], 2)} | "
                     f"{fmt_ratio(ratio(ind['vigild']['cpu_ms_per_1000'], ind['baseline']['cpu_ms_per_1000']))} |")
        for label, key, digits in (("user CPU s in the window (vigil-load / load-gorilla)", "user_s", 2),
                                   ("system CPU s in the window (vigil-load / load-gorilla)", "sys_s", 2),
                                   ("context switches per round trip (vigil-load / load-gorilla)",
                                    "switches_per_round_trip", 3)):
            lines.append(f"| {label} | {fmt(h['vigild'].get(key), digits)} / {fmt(ind['vigild'].get(key), digits)} | "
                         f"{fmt(h['baseline'].get(key), digits)} / {fmt(ind['baseline'].get(key), digits)} | |")
        lines.append(f"| load generator's own CPU s in the window (vigil-load / load-gorilla) | "
                     f"{fmt(h['vigild']['load_cpu_s'], 2)} / {fmt(ind['vigild']['load_cpu_s'], 2)} | "
                     f"{fmt(h['baseline']['load_cpu_s'], 2)} / {fmt(ind['baseline']['load_cpu_s'], 2)} | |")
    lines += ["", "Each server is timed twice: driven by vigil-load (vigil's own client, on its framing core) and by "
              "load-gorilla (`Benchmarks/load-gorilla`, an independent Go client on gorilla/websocket whose default "
              "ping handler answers), each on the same two cores. Round trips are the pongs the load generator sent, "
              "read from its progress lines every 0.1 s. Counts per round trip are in section 2a."]

    if "counts" in results:
        lines += count_section(results["counts"])

    lines += ["", "## 3. Dead-peer detection", ""]
    for key, title in (("detection_nopong", "Peers that stop answering pings (`--no-pong`): time from the first "
                        "unanswered ping to the close, seen by the peer"),
                       ("detection_frozen", "Load process frozen with SIGSTOP: time from the freeze to each "
                        "close, from the server's own close timestamps")):
        d = results[key]
        lines += [f"{title}; {d['n']} connections, P = {d['ping_interval']}, T = {d['pong_timeout']}, "
                  f"P + T = {d['bound_ms']:.0f} ms.", "",
                  "| | vigild | baseline | ratio |", "|---|---|---|---|"]
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            lines.append(f"| {stat.replace('_ms', '')} ms | {fmt(d['vigild'][stat])} | {fmt(d['baseline'][stat])} | "
                         f"{fmt_ratio(ratio(d['vigild'][stat], d['baseline'][stat]))} |")
        lines.append(f"| closes recorded | {d['vigild']['closes']} {d['vigild']['causes']} | "
                     f"{d['baseline']['closes']} {d['baseline']['causes']} | |")
        lines.append("")

    e = results["echo"]
    lines += ["## 4. Echo throughput", "",
              f"{e['n']} connections, {e['size']}-byte binary messages, one in flight per connection, {e['seconds']} s.", "",
              "| | vigild | baseline | ratio |", "|---|---|---|---|",
              f"| messages/s | {e['vigild']['rate']:.0f} | {e['baseline']['rate']:.0f} | "
              f"{fmt_ratio(ratio(e['vigild']['rate'], e['baseline']['rate']))} |",
              f"| latency p50 / p99 ms | {e['vigild']['p50_ms']} / {e['vigild']['p99_ms']} | "
              f"{e['baseline']['p50_ms']} / {e['baseline']['p99_ms']} | |",
              f"| server CPU ms per 1000 messages | {fmt(e['vigild']['cpu_ms_per_1000'], 2)} | "
              f"{fmt(e['baseline']['cpu_ms_per_1000'], 2)} | "
              f"{fmt_ratio(ratio(e['vigild']['cpu_ms_per_1000'], e['baseline']['cpu_ms_per_1000']))} |"]

    s = results["startup"]
    lines += ["", "## 5. Start-up", "", f"Median of {s['runs']} starts.", "",
              "| | vigild | baseline | ratio |", "|---|---|---|---|",
              f"| exec → READY=1 | {fmt(s['vigild']['to_ready_ms'])} ms | n/a (no sd_notify) | |",
              f"| exec → port accepting | {fmt(s['vigild']['to_accept_ms'])} ms | {fmt(s['baseline']['to_accept_ms'])} ms | "
              f"{fmt_ratio(ratio(s['vigild']['to_accept_ms'], s['baseline']['to_accept_ms']))} |"]

    c = results["burst"]
    lines += ["", "## 6. Close burst", "",
              f"{c['n']} connections dropped at once (the load process killed): time until every close is recorded.", "",
              "| | vigild | baseline | ratio |", "|---|---|---|---|",
              f"| all closes recorded after | {c['vigild']['all_recorded_s']:.2f} s | {c['baseline']['all_recorded_s']:.2f} s | "
              f"{fmt_ratio(ratio(c['vigild']['all_recorded_s'], c['baseline']['all_recorded_s']))} |",
              f"| closes recorded | {c['vigild']['closes']} (/closes {c['vigild']['in_closes']}, /metrics "
              f"{c['vigild']['in_metrics']}) | {c['baseline']['closes']} | |"]

    if "proxy" in results:
        lines += ["", "## 7. Proxy mode against nginx, HAProxy and Caddy", ""] + proxy_section(results["proxy"], results.get("date"))
    if "compression" in results:
        lines += ["", "## 8. permessage-deflate", ""] + compression_section(results["compression"], results.get("date"))
    if "tls" in results:
        lines += ["", "## 9. TLS on the listener", ""] + tls_section(results["tls"], results.get("date"))
    if "pool" in results:
        lines += ["", "## 10. A pool of three upstreams", ""] + pool_section(results["pool"], results.get("date"))

    x = results["crosscheck"]
    lines += ["", "## Cross-check of the load generator", "",
              f"One connection echoing 64-byte messages to vigild for {x['seconds']} s, measured by vigil-load and by an "
              "independent client (Python `websockets`, one message in flight). Python's own per-message cost makes its "
              "rate lower; the latencies should be of the same order, and vigil-load's the smaller.", "",
              "| client | messages/s | p50 ms | p99 ms |", "|---|---|---|---|",
              f"| vigil-load | {x['vigil_load']['rate']:.0f} | {x['vigil_load']['p50_ms']} | {x['vigil_load']['p99_ms']} |",
              f"| Python websockets | {x['python_websockets']['rate']:.0f} | {x['python_websockets']['p50_ms']:.3f} | "
              f"{x['python_websockets']['p99_ms']:.3f} |"]

    lines += ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    lines += targets(results)
    lines += ["", "## Commands", "", "```", *commands, "```", ""]
    commentary = os.path.join(HERE, "commentary.md")
    if os.path.exists(commentary) and not args.quick:
        lines += [open(commentary).read()]
    return "\n".join(lines) + "\n"


def proxy_section(p, run_date=None):
    v = p["versions"]
    # A section run on its own (`--only proxy`) and put into a full run's saved JSON by hand
    # carries "merged_into": the full run's date.
    rerun = (f"This section comes from a later run of the proxy scenario alone ({p['date']}, "
             "`bench.py --only proxy`, merged into the saved results), on the same machine; its rows share that run. "
             if p.get("merged_into") == run_date else "")
    lines = [rerun + f"Every row in front of the same backend (the gorilla baseline, pinging only every hour); `direct` is "
             "the load generator → backend. vigild in `--mode proxy`; nginx, HAProxy and Caddy from Debian "
             f"(`{v['nginx']}`; `{v['haproxy']}`; Caddy `{v['caddy']}`), each configured as its documentation "
             "says for WebSocket proxying, workers and threads at their defaults (`Benchmarks/proxies/`). "
             f"Echo: {p['echo_n']} connections, {p['message_size']}-byte binary messages, one in flight per "
             f"connection, {p['echo_seconds']} s; added = the row's latency minus direct's. CPU: utime + stime of "
             "the proxy's processes only (nginx and HAProxy: master + worker; vigild and Caddy: one process) over "
             "the echo window, per 1000 relayed messages (a round trip relays two, one each way). Memory: RSS of "
             "the proxy's processes with N idle pairs open, minus before, over N. Frozen client: "
             f"{p['frozen_n']} connections, the load process stopped with SIGSTOP; time from the freeze to the "
             f"backend's close of each leg, watched for {p['frozen_window_s']} s. vigild pings with P = 1 s, "
             "T = 1 s in the frozen run, P = 30 s, T = 10 s otherwise.", "",
             "| | echo p50 / p99 ms | added p50 / p99 ms | CPU ms per 1000 relayed | "
             + " | ".join(f"KiB/pair at {n}" for n in p["sizes"]) + " | frozen client → backend leg closed after |",
             "|---|---|---|---|" + "---|" * len(p["sizes"]) + "---|"]
    labels = {"direct": "direct", "vigild": "vigild", "nginx": "nginx", "haproxy": "HAProxy", "caddy": "Caddy"}
    for target, entry in p["targets"].items():
        if "error" in entry:
            lines.append(f"| {labels[target]} | could not run: {entry['error'].replace('|', '/')} |"
                         + " |" * (3 + len(p["sizes"])))
            continue
        e, f = entry["echo"], entry["frozen"]
        if target == "direct":
            added, cpu, memory = "(reference)", "n/a (no proxy)", ["n/a"] * len(p["sizes"])
        else:
            added = f"{fmt(e['added_p50_ms'], 3)} / {fmt(e['added_p99_ms'], 3)}"
            cpu = fmt(e["cpu_ms_per_1000"], 2)
            memory = [kib(m["per_pair"]) for m in entry["memory"]]
        if f["closed_in_window"] == f["n"]:
            frozen = f"{f['max_s']:.2f} s (all {f['n']}; p50 {f['p50_s']:.2f} s; {f['causes']})"
        elif f["closed_in_window"] == 0:
            frozen = f"not closed within {f['window_s']} s"
        else:
            frozen = f"{f['closed_in_window']} of {f['n']} closed within {f['window_s']} s (last after {f['max_s']:.2f} s)"
        lines.append(f"| {labels[target]} | {e['p50_ms']} / {e['p99_ms']} | {added} | {cpu} | " + " | ".join(memory)
                     + f" | {frozen} |")
    rates = [f"{labels[t]} {e['echo']['rate']:.0f}" for t, e in p["targets"].items() if "echo" in e]
    lines += ["", "Round trips per second in the echo window: " + ", ".join(rates) + ". The echo load is closed-loop "
              "(each connection sends its next message when the echo arrives) on cores the load, the proxy and the "
              "backend share, so a row that completes more round trips also loads the cores more: that is how an "
              "added p99 can come out negative. Below, every echo run: closed loop, and the same latencies at an "
              f"equal load, every target paced at {p.get('paced_rate', '?')} round trips a second ({p['echo_n']} "
              "connections, each message sent when due whether or not earlier echoes are back, and timed from when it "
              "was due)"
              + ("; each driven by vigil-load (vigil's own client) and by load-gorilla (Benchmarks/load-gorilla: "
                 "Go and gorilla/websocket, sharing no code with vigild, so a cost or a speed only vigil's client sees "
                 "shows as a difference between the two), and closed loop with "
                 f"{size_label(p.get('large_message_size', 16384))} messages (load-gorilla), where a relay's cost is "
                 "the bytes it copies more than the messages it handles"
                 if len(proxy_runs(p)) > 2 else ", driven by vigil-load")
              + ". vs nginx: the row's figure over nginx's in the same run and the same kind of run (vigild's rows "
              "are the ratios #29 sets floors on).", "",
              "| run | | round trips/s | p50 / p99 ms | added p50 / p99 ms | CPU ms per 1000 relayed | CPU vs nginx "
              "| round trips/s vs nginx |", "|---|---|---|---|---|---|---|---|"]
    for kind, run in proxy_runs(p):
        nginx = p["targets"].get("nginx", {}).get(kind) or {}
        for target, entry in p["targets"].items():
            e = entry.get(kind)
            if "error" in entry or e is None:
                continue  # the target could not run at all (said in the table above), or saved before this run
            if "error" in e:
                lines.append(f"| {run} | {labels[target]} | could not run: {e['error'].replace('|', '/')} | | | | | |")
                continue
            if target == "direct":
                added, cpu, cpu_ratio, rate_ratio = "(reference)", "n/a (no proxy)", "n/a", "n/a"
            else:
                added = f"{fmt(e.get('added_p50_ms'), 3)} / {fmt(e.get('added_p99_ms'), 3)}"
                cpu = fmt(e["cpu_ms_per_1000"], 2)
                cpu_ratio = fmt_ratio(ratio(e["cpu_ms_per_1000"], nginx.get("cpu_ms_per_1000")))
                rate_ratio = fmt_ratio(ratio(e["rate"], nginx.get("rate")))
            latency = f"{fmt(e['p50_ms'], 3)} / {fmt(e['p99_ms'], 3)}"
            lines.append(f"| {run} | {labels[target]} | {e['rate']:.0f} | {latency} | {added} | {cpu} | {cpu_ratio} "
                         f"| {rate_ratio} |")
    return lines


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size}-byte"


def proxy_runs(p):
    """The proxy section's echo runs as (key in a target's entry, label), the ones this result
    has: results saved before load-gorilla's runs were added have only "echo" and "paced"."""
    rate = p.get("paced_rate", "?")
    runs = (("echo", "vigil-load, closed loop"), ("paced", f"vigil-load, paced at {rate}/s"),
            ("echo_outside", "load-gorilla, closed loop"), ("paced_outside", f"load-gorilla, paced at {rate}/s"),
            ("echo_16k", f"load-gorilla, {size_label(p.get('large_message_size', 16384))}, closed loop"))
    return [(kind, label) for kind, label in runs if any(kind in entry for entry in p["targets"].values())]


def compression_section(c, run_date=None):
    """Section 8: what compression costs and saves, against gorilla's and through the proxy. A
    section run on its own (`--only compression`) and put into a full run's saved JSON by hand
    carries "merged_into": the full run's date."""
    e, mem, p = c["echo"], c["memory"], c["proxy"]
    rerun = (f"This section comes from a later run of the compression scenario alone ({c['date']}, "
             "`bench.py --only compression`, merged into the saved results), on the same machine. "
             if c.get("merged_into") == run_date else "")
    lines = [rerun + f"{e['n']} connections echoing {e['size']}-byte JSON text (`vigil-load --payload json`: price quotes, "
             "compressible as real traffic; `--deflate` offers permessage-deflate), one message in flight each, "
             f"{e['seconds']} s. The baseline runs with `-compression` (gorilla's EnableCompression, flate level 1, "
             "vigild's default level); both end up with no context takeover either way. Bytes per round trip: "
             "everything the load process read and wrote (/proc/PID/io), i.e. both directions of the client's link, "
             "headers included. CPU: the server's, per 1000 echoed messages.", "",
             "| | CPU ms per 1000 | bytes per round trip | round trips/s | p50 / p99 ms |", "|---|---|---|---|---|"]
    for key, label in (("vigild_plain", "vigild, uncompressed"), ("vigild_deflate", "vigild, permessage-deflate"),
                       ("baseline_plain", "baseline, uncompressed"),
                       ("baseline_deflate", "baseline, permessage-deflate")):
        r = e[key]
        lines.append(f"| {label} | {fmt(r['cpu_ms_per_1000'], 1)} | {r['link_bytes_per_round_trip']:.0f} | "
                     f"{r['rate']:.0f} | {r['p50_ms']} / {r['p99_ms']} |")
    lines += ["", f"CPU ratio with compression, vigild / baseline: "
              f"{fmt_ratio(ratio(e['vigild_deflate']['cpu_ms_per_1000'], e['baseline_deflate']['cpu_ms_per_1000']))}; "
              f"bytes on the link, compressed / uncompressed: vigild "
              f"{fmt_ratio(ratio(e['vigild_deflate']['link_bytes_per_round_trip'], e['vigild_plain']['link_bytes_per_round_trip']))}, "
              f"baseline {fmt_ratio(ratio(e['baseline_deflate']['link_bytes_per_round_trip'], e['baseline_plain']['link_bytes_per_round_trip']))}.",
              "", f"Memory: vigild's RSS per connection with {mem['n']} idle connections, minus RSS before, over N: "
              "connections that have sent nothing (`vigil-load --mode hold`), and connections that have each made "
              f"one {mem['size']}-byte round trip (`--mode greet`; the uncompressed ones moved more bytes, and NIO "
              "keeps a larger read buffer for them).", "",
              "| | KiB/conn | more than uncompressed |", "|---|---|---|",
              f"| uncompressed, no message yet | {kib(mem['plain']['per_conn'])} | |",
              f"| permessage-deflate negotiated, no message yet | {kib(mem['deflate']['per_conn'])} | "
              f"{mem['extra_kib']:.2f} KiB |",
              f"| uncompressed, after one round trip | {kib(mem['plain_used']['per_conn'])} | |",
              f"| permessage-deflate at the defaults (no context takeover: one zlib stream per event loop), after one "
              f"round trip | {kib(mem['deflate_used']['per_conn'])} | {mem['used_extra_kib']:.2f} KiB |",
              f"| permessage-deflate, `compression_context_takeover: true` (streams per connection), after one round "
              f"trip | {kib(mem['deflate_context_takeover_used']['per_conn'])} | "
              f"{mem['context_takeover_extra_kib']:.2f} KiB |",
              "", f"Through a proxy to the baseline with `-compression`, the same compressed echo ({p['n']} connections, "
              f"{p['size']}-byte JSON, {p['seconds']} s): vigild passes compressed messages through as they are, nginx "
              "tunnels the upgraded stream. CPU: the proxy's processes, per 1000 relayed messages (two per round trip).",
              "", "| | bytes per round trip on the client's link | proxy CPU ms per 1000 relayed | round trips/s |",
              "|---|---|---|---|"]
    for target, r in p["targets"].items():
        if "error" in r:
            lines.append(f"| {target} | could not run: {r['error'].replace('|', '/')} | | |")
            continue
        cpu = "n/a (no proxy)" if target == "direct" else fmt(r["cpu_ms_per_1000"], 2)
        lines.append(f"| {target} | {r['link_bytes_per_round_trip']:.0f} | {cpu} | {r['rate']:.0f} |")
    return lines


def tls_section(t, run_date=None):
    """Section 9: what terminating TLS costs, against nginx. Measured, not yet a target (the
    relay-cost issue sets those). A section run on its own and merged by hand carries
    "merged_into": the full run's date."""
    e, mem = t["echo"], t["memory"]
    rerun = (f"This section comes from a later run of the TLS scenario alone ({t['date']}, "
             "`bench.py --only tls`, merged into the saved results), on the same machine. "
             if t.get("merged_into") == run_date else "")
    lines = [rerun + f"{e['n']} connections echoing {e['size']}-byte messages over `wss://` (TLS 1.3, a P-256 certificate), "
             f"one message in flight each, {e['seconds']} s, through vigild's proxy (`--tls-cert-file`) and through nginx "
             "(`listen … ssl`, Benchmarks/proxies/nginx-tls.conf: the same certificate, versions and TLS 1.2 suites) to "
             "the baseline over plain `ws://`. CPU: the proxy's processes, per 1000 relayed messages (two per round trip).",
             "", "| | proxy CPU ms per 1000 relayed | round trips/s | p50 / p99 ms |", "|---|---|---|---|"]
    for target, r in e["targets"].items():
        if "error" in r:
            lines.append(f"| {target} | could not run: {r['error'].replace('|', '/')} | | |")
            continue
        lines.append(f"| {target} | {fmt(r['cpu_ms_per_1000'], 2)} | {r['rate']:.0f} | {r['p50_ms']} / {r['p99_ms']} |")
    lines += ["", f"CPU ratio, vigild / nginx: {fmt_ratio(e['cpu_ratio_vs_nginx'])}.", "",
              "Memory: RSS with N idle connections (or pairs), minus RSS before, over N.", "",
              "| | N | KiB each |", "|---|---|---|",
              f"| vigild echo, plain `ws://` | {mem['vigild_plain']['n']} | {kib(mem['vigild_plain']['per_conn'])} |",
              f"| vigild echo, `wss://` | {mem['vigild_tls']['n']} | {kib(mem['vigild_tls']['per_conn'])} "
              f"({mem['tls_extra_kib']:+.2f} KiB for TLS) |"]
    for target in ("vigild", "nginx"):
        r = mem.get(f"{target}_pair", {})
        if "error" in r:
            lines.append(f"| {target} proxy, a `wss://` pair | | could not run: {r['error'].replace('|', '/')} |")
        elif r:
            lines.append(f"| {target} proxy, a `wss://` client and its plain backend leg | {r['n']} | {kib(r['per_pair'])} |")
    return lines


def pool_section(p, run_date=None):
    """Section 10: a pool of three upstreams behind vigild and behind nginx. Measured, not a
    target (the relay-cost issue, #29, sets those). A section run on its own and merged by hand
    carries "merged_into": the full run's date."""
    rerun = (f"This section comes from a later run of the pool scenario alone ({p['date']}, "
             "`bench.py --only pool`, merged into the saved results), on the same machine. "
             if p.get("merged_into") and p["merged_into"] == run_date else "")
    lines = [rerun + f"{p['n']} connections echoing {p['size']}-byte binary messages, one in flight each, {p['seconds']} s, "
             f"through a pool of {p['pool']} backends (three instances of the gorilla baseline, pinging only every hour): "
             "vigild from a config file at its defaults but for `max_connections` and one route, `path: /` to the "
             "three (`balance: round_robin`); nginx "
             + (f"(`{p['nginx_version']}`) " if p.get("nginx_version") else "")
             + "with `proxy_pass` to an `upstream` block of the same three, round robin "
             "(Benchmarks/proxies/nginx-pool.conf). CPU: the proxy's processes, per 1000 relayed messages (two per round "
             "trip). Spread: each backend's accepted connections while the load was connected (its ESTABLISHED "
             "sockets, from /proc), and for vigild `vigil_upstream_pairs_active{route,upstream}` read at the same "
             "moment. These figures are measured, not targets: the relay-cost issue (#29) sets those.", "",
             "| | proxy CPU ms per 1000 relayed | round trips/s | p50 / p99 ms | connections per backend |"
             " vigil_upstream_pairs_active |", "|---|---|---|---|---|---|"]
    for target, r in p["targets"].items():
        if "error" in r:
            lines.append(f"| {target} | could not run: {r['error'].replace('|', '/')} | | | | |")
            continue
        metric = r.get("pairs_active_metric")
        shown = " / ".join(map(str, metric)) if metric is not None else ("n/a" if target != "vigild" else "no series")
        lines.append(f"| {target} | {fmt(r['cpu_ms_per_1000'], 2)} | {r['rate']:.0f} | {r['p50_ms']} / {r['p99_ms']} | "
                     f"{' / '.join(map(str, r['backend_legs']))} | {shown} |")
    lines += ["", f"CPU ratio, vigild / nginx: {fmt_ratio(p['cpu_ratio_vs_nginx'])}."]
    return lines


def count_section(c):
    """Section 2a: syscalls, heap allocations and instructions per unit of work."""
    lines = ["", "## 2a. Counts per ping round trip and per echoed message", "",
             f"Syscalls (`strace -c -f`, every thread) and heap allocations over {c['hold']['vigild']['window_s']} s "
             f"of steady state in a run of their own; instructions (valgrind's callgrind, every thread) in another. "
             f"Heartbeat: {c['hold']['vigild']['n']} connections pinged every 1 s (callgrind: "
             f"{c['hold']['vigild']['instructions'].get('n', '?')}). Echo: {c['echo']['vigild']['n']} connections (the timed "
             "echo's load), 64-byte messages, one in flight each; the last two rows again over as many connections as "
             "the heartbeat, where the messages are counted by the load with as many in flight at each end of the window "
             "(±7 % at 10,000 over 10 s): read them to one decimal. vigild's allocations are malloc calls (Benchmarks/malloc-count, preloaded); the "
             "Go baseline's are its runtime's heap objects (`runtime.MemStats.Mallocs`): Go does not allocate with malloc.", "",
             "| per unit | vigild | baseline | ratio |", "|---|---|---|---|"]
    for mode, unit in (("hold", "ping round trip"), ("echo", "echoed message")):
        v, g = c[mode]["vigild"], c[mode]["baseline"]
        for label, pick, digits in (("syscalls", lambda e: e["syscalls"].get("per_unit"), 2),
                                    ("heap allocations", lambda e: e.get("allocations_per_unit"), 3),
                                    ("instructions", lambda e: e["instructions"].get("per_unit"), 0)):
            lines.append(f"| {label} per {unit} | {fmt(pick(v), digits)} | {fmt(pick(g), digits)} | "
                         f"{fmt_ratio(ratio(pick(v), pick(g)))} |")
    many = c.get("echo_many")
    if many:
        v, g = many["vigild"], many["baseline"]
        for label, pick, digits in (("syscalls", lambda e: e["syscalls"].get("per_unit"), 2),
                                    ("heap allocations", lambda e: e.get("allocations_per_unit"), 3)):
            lines.append(f"| {label} per echoed message, {v['n']} connections | {fmt(pick(v), digits)} | "
                         f"{fmt(pick(g), digits)} | {fmt_ratio(ratio(pick(v), pick(g)))} |")
    lines.append("")
    for mode in ("hold", "echo"):
        for kind in ("vigild", "baseline"):
            e = c[mode][kind]
            calls, instr = e["syscalls"], e["instructions"]
            parts = []
            if "top" in calls:
                parts.append(f"{calls['total']} syscalls over {e['units']} units: " +
                             ", ".join(f"`{name}` {per:.2f}" for name, per in calls["top"].items()))
            else:
                parts.append(f"syscalls not counted ({calls.get('error', 'no units')})")
            if "allocations" in e:
                parts.append(f"{e['allocations']} allocations")
            if "error" in instr:
                parts.append(f"instructions not counted: {instr['error']}")
            else:
                parts.append(f"{instr['instructions']} instructions over {instr['units']} units in {instr['seconds']} s")
            lines.append(f"- {mode} {kind}: " + "; ".join(parts))
    return lines


def targets(r):
    rows = []

    def row(name, measured, ok):
        """ok None: not measured in this run (a run that failed, or results saved before the row's
        figures were): neither met nor missed."""
        rows.append(f"| {name} | {measured} | {'n/a' if ok is None else 'met' if ok else '**missed**'} |")

    worst_ratio = max(ratio(x["vigild"]["per_conn"], x["baseline"]["per_conn"]) for x in r["memory"])
    row("RSS per idle connection ≤ 0.5× baseline", f"worst ratio {worst_ratio:.2f}×", worst_ratio <= 0.5)
    h = r["heartbeat"]
    hb = ratio(h["vigild"]["cpu_ms_per_1000"], h["baseline"]["cpu_ms_per_1000"])
    row("CPU per 1000 ping round trips ≤ 0.5× baseline", fmt_ratio(hb), hb is not None and hb <= 0.5)
    ind = h.get("independent")
    if ind:
        hi = ratio(ind["vigild"]["cpu_ms_per_1000"], ind["baseline"]["cpu_ms_per_1000"])
        row("… and with load-gorilla as the client", fmt_ratio(hi), hi is not None and hi <= 0.5)
    c = r.get("counts")
    if c:
        per_call = c["hold"]["vigild"]["syscalls"].get("per_unit")
        row("syscalls per ping round trip ≤ 2.5", fmt(per_call, 2), per_call is not None and per_call <= 2.5)
        for mode, unit, limit in (("hold", "ping round trip", 1), ("echo", "echoed message", 2)):
            per = c[mode]["vigild"].get("allocations_per_unit")
            row(f"heap allocations per {unit} ≤ {limit} ({c[mode]['vigild']['n']} connections)", fmt(per, 3),
                per is not None and per <= limit)
    sc = r["scale"]
    row(f"the fd limit's worth held ({sc['n']}) with p99 ping RTT < 5 ms",
        f"{sc['live']} held; p99 {fmt(sc['rtt_p99_ms'], 3)} ms",
        sc["live"] == sc["n"] and sc["rtt_p99_ms"] is not None and sc["rtt_p99_ms"] < 5)
    at_100k = (r["fits"]["vigild"]["intercept_bytes"] + r["fits"]["vigild"]["slope_bytes"] * 100_000) / 2**30
    row("slope puts 100k connections under 1 GiB", f"{at_100k:.2f} GiB", at_100k < 1)
    for key, label in (("detection_nopong", "no-pong"), ("detection_frozen", "frozen")):
        d = r[key]
        row(f"detection max ≤ P + T + 50 ms ({label})", f"{fmt(d['vigild']['max_ms'])} ms vs {d['bound_ms'] + 50:.0f} ms",
            d["vigild"]["max_ms"] <= d["bound_ms"] + 50)
    e = r["echo"]
    ec = ratio(e["vigild"]["cpu_ms_per_1000"], e["baseline"]["cpu_ms_per_1000"])
    row("echo CPU per 1000 messages ≤ 0.6× baseline", fmt_ratio(ec), ec is not None and ec <= 0.6)
    row("echo messages/s ≥ baseline", fmt_ratio(ratio(e["vigild"]["rate"], e["baseline"]["rate"])),
        e["vigild"]["rate"] >= e["baseline"]["rate"])
    ready = r["startup"]["vigild"]["to_ready_ms"]
    row("start-up to READY ≤ 50 ms", f"{fmt(ready)} ms", ready is not None and ready <= 50)
    st = ratio(r["startup"]["vigild"]["to_accept_ms"], r["startup"]["baseline"]["to_accept_ms"])
    row("exec → port accepting ≤ 2× baseline", fmt_ratio(st), st is not None and st <= 2)
    burst = r["burst"]
    br = ratio(burst["vigild"]["all_recorded_s"], burst["baseline"]["all_recorded_s"])
    complete = burst["vigild"]["in_closes"] == burst["vigild"]["in_metrics"] == burst["n"]
    row(f"{burst['n']} close burst recorded ≤ 1.0× baseline, none lost",
        f"{fmt_ratio(br)}, {burst['vigild']['in_closes']} of {burst['n']} recorded",
        br is not None and br <= 1 and complete)
    p = r.get("proxy", {}).get("targets", {})
    if "echo" in p.get("vigild", {}) and "echo" in p.get("nginx", {}):
        v, n = p["vigild"], p["nginx"]
        row("proxy: added p99 latency ≤ nginx's (closed loop)",
            f"{fmt(v['echo']['added_p99_ms'], 3)} ms vs {fmt(n['echo']['added_p99_ms'], 3)} ms",
            v["echo"]["added_p99_ms"] <= n["echo"]["added_p99_ms"])
        if "paced" in v and "paced" in n:
            row(f"proxy: added p99 latency ≤ nginx's (paced, {r['proxy'].get('paced_rate')}/s)",
                f"{fmt(v['paced']['added_p99_ms'], 3)} ms vs {fmt(n['paced']['added_p99_ms'], 3)} ms",
                v["paced"]["added_p99_ms"] <= n["paced"]["added_p99_ms"])
        row("proxy: CPU per relayed message ≤ nginx's",
            f"{fmt(v['echo']['cpu_ms_per_1000'], 2)} vs {fmt(n['echo']['cpu_ms_per_1000'], 2)} ms per 1000",
            v["echo"]["cpu_ms_per_1000"] <= n["echo"]["cpu_ms_per_1000"])
        # #29's floors, measured with the outside client (load-gorilla): vigild against nginx
        # in the same run. A run that failed, or results saved before these runs, show n/a.
        rate = r["proxy"].get("paced_rate")
        for kind, key, what, unit, bound, label in (
                ("echo_outside", "cpu_ms_per_1000", "CPU per relayed message", "ms per 1000", 1.3, "closed loop"),
                ("paced_outside", "cpu_ms_per_1000", "CPU per relayed message", "ms per 1000", 1.3, f"paced, {rate}/s"),
                ("echo_outside", "rate", "round trips/s", "round trips/s", 0.9, "closed loop")):
            mine, theirs = v.get(kind, {}).get(key), n.get(kind, {}).get(key)
            measured = ratio(mine, theirs)
            at_most = key == "cpu_ms_per_1000"  # CPU is a ceiling, round trips a floor
            row(f"proxy: {what} {'≤' if at_most else '≥'} {bound}× nginx's ({label}, load-gorilla)",
                "n/a (not measured in this run)" if measured is None else
                f"{fmt_ratio(measured)} ({fmt(mine, 2 if at_most else 0)} vs {fmt(theirs, 2 if at_most else 0)} {unit})",
                None if measured is None else measured <= bound if at_most else measured >= bound)
        largest = -1
        row(f"proxy: RSS per pair ≤ nginx's (at {v['memory'][largest]['n']})",
            f"{kib(v['memory'][largest]['per_pair'])} vs {kib(n['memory'][largest]['per_pair'])} KiB",
            v["memory"][largest]["per_pair"] <= n["memory"][largest]["per_pair"])
        frozen = v["frozen"]
        row("proxy: a frozen client's backend leg closed within P + T + 50 ms",
            f"{frozen['max_s'] * 1000:.0f} ms vs 2050 ms" if frozen["closed_in_window"] == frozen["n"] else
            f"{frozen['closed_in_window']} of {frozen['n']}",
            frozen["closed_in_window"] == frozen["n"] and frozen["max_s"] <= 2.05)
    c = r.get("compression")
    if c:
        mem = c["memory"]
        row("compression: an idle compressed connection ≤ 1 KiB more than an uncompressed one",
            f"{mem['extra_kib']:.2f} KiB negotiated, {mem['used_extra_kib']:.2f} KiB after a round trip",
            mem["extra_kib"] <= 1 and mem["used_extra_kib"] <= 1)
        e = c["echo"]
        ce = ratio(e["vigild_deflate"]["cpu_ms_per_1000"], e["baseline_deflate"]["cpu_ms_per_1000"])
        row("compression: echo CPU per 1000 messages ≤ baseline's with compression", fmt_ratio(ce),
            ce is not None and ce <= 1)
        pt = c["proxy"]["targets"]
        if "cpu_ms_per_1000" in pt.get("vigild", {}) and "cpu_ms_per_1000" in pt.get("nginx", {}):
            row("compression: proxy CPU per relayed compressed message ≤ nginx's",
                f"{fmt(pt['vigild']['cpu_ms_per_1000'], 2)} vs {fmt(pt['nginx']['cpu_ms_per_1000'], 2)} ms per 1000",
                pt["vigild"]["cpu_ms_per_1000"] <= pt["nginx"]["cpu_ms_per_1000"])
            direct = pt.get("direct", {}).get("link_bytes_per_round_trip")
            if direct:
                through = pt["vigild"]["link_bytes_per_round_trip"]
                row("compression: bytes on the client's link through vigild within 10 % of direct",
                    f"{ratio(through, direct):.3f}×", through <= 1.1 * direct)
    return rows


def check_quick(results):
    """What a quick run must show: every scenario ran, produced numbers, and counted exactly."""
    problems = []
    for key in ("memory", "scale", "heartbeat", "counts", "detection_nopong", "detection_frozen", "echo", "startup", "burst",
                "crosscheck", "proxy", "compression", "tls", "pool"):
        if key not in results:
            problems.append(f"scenario {key} did not run")
    for row in results.get("memory", []):
        for kind in ("vigild", "baseline"):
            if row[kind]["connected"] != row["n"]:
                problems.append(f"memory {kind}: {row[kind]['connected']} of {row['n']} connected")
    for key in ("detection_nopong", "detection_frozen"):
        d = results.get(key, {})
        if d and d["vigild"]["causes"] != {"pong_timeout": d["n"]}:
            problems.append(f"{key}: vigild recorded {d['vigild']['causes']}, expected {d['n']} pong_timeout")
        if d and d["baseline"]["closes"] != d["n"]:
            problems.append(f"{key}: the baseline recorded {d['baseline']['closes']} closes of {d['n']}")
    sc = results.get("scale")
    if sc and (sc["live"] != sc["n"] or not sc["rtt_samples"]):
        problems.append(f"scale: {sc['live']} of {sc['n']} live, {sc['rtt_samples']} RTT samples")
    burst = results.get("burst")
    if burst and not (burst["vigild"]["in_closes"] == burst["vigild"]["in_metrics"] == burst["n"]):
        problems.append(f"burst: /closes {burst['vigild']['in_closes']}, /metrics {burst['vigild']['in_metrics']}, "
                        f"expected {burst['n']}")
    for key in ("heartbeat", "echo"):
        for kind in ("vigild", "baseline"):
            if key in results and results[key][kind]["cpu_ms_per_1000"] is None:
                problems.append(f"{key} {kind}: no number")
    for kind in ("vigild", "baseline"):
        independent = results.get("heartbeat", {}).get("independent", {}).get(kind)
        if independent is not None and independent["cpu_ms_per_1000"] is None:
            problems.append(f"heartbeat {kind} with load-gorilla: no number")
        for mode, entry in ((mode, results.get("counts", {}).get(mode, {}).get(kind))
                            for mode in ("hold", "echo", "echo_many")):
            if entry is None:
                continue
            if entry["syscalls"].get("per_unit") is None:
                problems.append(f"counts {mode} {kind}: no syscall count ({entry['syscalls'].get('error', 'no units')})")
            if entry.get("allocations_per_unit") is None:
                problems.append(f"counts {mode} {kind}: no allocation count")
            if mode != "echo_many" and entry["instructions"].get("per_unit") is None and kind == "vigild":
                problems.append(f"counts {mode} {kind}: no instruction count ({entry['instructions'].get('error')})")
    p = results.get("proxy")
    for target, entry in (p["targets"].items() if p else ()):
        if "error" in entry:
            problems.append(f"proxy {target}: {entry['error']}")
            continue
        e, f, paced = entry["echo"], entry["frozen"], entry["paced"]
        numbers = [e["p50_ms"], e["p99_ms"], paced["p50_ms"], paced["p99_ms"]]
        if paced["rate"] < 0.9 * p["paced_rate"]:
            problems.append(f"proxy {target}: paced at {p['paced_rate']}/s, achieved {paced['rate']:.0f}/s")
        if target != "direct":
            numbers += [e["added_p50_ms"], e["added_p99_ms"], e["cpu_ms_per_1000"], paced["added_p99_ms"]]
            numbers += [m["per_pair"] for m in entry["memory"]]
            for m in entry["memory"]:
                if not m["connected"] == m["backend_legs"] == m["n"]:
                    problems.append(f"proxy {target} memory: {m['connected']} connected, {m['backend_legs']} backend "
                                    f"legs, expected {m['n']}")
        for kind in ("echo_outside", "paced_outside", "echo_16k"):
            run = entry.get(kind, {"error": "did not run"})
            if "error" in run:
                problems.append(f"proxy {target} {kind} (load-gorilla): {run['error']}")
                continue
            numbers += [run["p50_ms"], run["p99_ms"], run["rate"]]
            if target != "direct":
                numbers += [run["cpu_ms_per_1000"], run.get("added_p99_ms")]
            if kind == "paced_outside" and run["rate"] < 0.9 * p["paced_rate"]:
                problems.append(f"proxy {target}: paced at {p['paced_rate']}/s by load-gorilla, achieved "
                                f"{run['rate']:.0f}/s")
            if run["connected"] != p["echo_n"]:
                problems.append(f"proxy {target} {kind}: {run['connected']} of {p['echo_n']} connected")
        if None in numbers:
            problems.append(f"proxy {target}: no number ({numbers})")
        if e["connected"] != p["echo_n"] or f["connected"] != f["n"]:
            problems.append(f"proxy {target}: {e['connected']} echo and {f['connected']} frozen connections")
        if target == "vigild" and f["closed_in_window"] != f["n"]:
            problems.append(f"proxy vigild: {f['closed_in_window']} of {f['n']} backend legs of a frozen client "
                            f"closed within {f['window_s']} s")
    for target, entry in results.get("pool", {}).get("targets", {}).items():
        numbers = [entry.get(k) for k in ("cpu_ms_per_1000", "rate", "p50_ms", "p99_ms")]
        if "error" not in entry and (None in numbers or not entry["round_trips"]):
            problems.append(f"pool {target}: no number ({numbers}, {entry['round_trips']} round trips)")
    if "pool" in results and results["pool"]["targets"].get("vigild", {}).get("pairs_active_metric") is None \
            and "error" not in results["pool"]["targets"].get("vigild", {}):
        problems.append("pool vigild: no vigil_upstream_pairs_active series for the route on /metrics")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vigild")
    parser.add_argument("--load")
    parser.add_argument("--baseline")
    parser.add_argument("--load-go", help="load-gorilla, the independent load generator (Benchmarks/load-gorilla)")
    parser.add_argument("--malloc-count", help="the LD_PRELOAD allocation counter (Benchmarks/malloc-count)")
    parser.add_argument("--report-from", help="rewrite --out from a run's saved JSON (after editing the commentary)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plots", help="directory for the PNG plot (relative links from --out)")
    parser.add_argument("--only", help="comma-separated scenarios to run (memory, scale, heartbeat, counts, detection, echo, "
                        "startup, burst, crosscheck, proxy, budget, compression, tls, pool); prints their results instead of writing a report")
    args = parser.parse_args()
    if args.report_from:
        with open(args.report_from) as f:
            saved = json.load(f)
        with open(args.out, "w") as f:
            f.write(report(saved, args, saved["commands"], saved.get("plot")))
        return
    if not (args.vigild and args.load and args.baseline and args.load_go and args.malloc_count):
        parser.error("--vigild, --load, --baseline, --load-go and --malloc-count are required for a run")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Room for each process's own descriptors: vigild keeps 128 for the status API and the
    # service manager (it refuses connections beyond RLIMIT_NOFILE minus that reserve).
    most = hard - 150
    if args.quick:
        sizes, beat_n, window, det_n, burst_n, echo_s, runs = [100, 300], 200, 3, 100, 300, 2, 3
    else:
        sizes, beat_n, window, det_n, burst_n, echo_s, runs = [1000, 5000, 10000, most], 10000, 20, 10000, 10000, 10, 20
    proxy_sizes = [100] if args.quick else [1000, 5000]
    log(f"RLIMIT_NOFILE hard limit {hard}: at most {most} connections per process in this run")
    workdir = tempfile.mkdtemp(prefix="vigil-bench-")
    binaries = argparse.Namespace(vigild=args.vigild, load=args.load, baseline=args.baseline, load_go=args.load_go,
                                  malloc_count=os.path.abspath(args.malloc_count))
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine()}
    scenarios = {
        "memory": lambda: {"memory": idle_memory(binaries, sizes, workdir)},
        "scale": lambda: {"scale": scale(binaries, sizes[-1], "1s" if args.quick else "30s", workdir)},
        "heartbeat": lambda: {"heartbeat": heartbeat_cost(binaries, beat_n, window, workdir)},
        "counts": lambda: {"counts": counts(binaries, beat_n, 50, 3 if args.quick else 10, 100 if args.quick else 1000,
                                            3 if args.quick else 10, workdir)},
        "detection": lambda: {"detection_nopong": detection(binaries, det_n, "1s", "1s", workdir, frozen=False),
                              "detection_frozen": detection(binaries, det_n, "1s", "1s", workdir, frozen=True)},
        "echo": lambda: {"echo": echo(binaries, 50, 64, echo_s, workdir)},
        "startup": lambda: {"startup": startup(binaries, runs, workdir)},
        "crosscheck": lambda: {"crosscheck": crosscheck(binaries, echo_s, workdir)},
        "burst": lambda: {"burst": close_burst(binaries, burst_n, workdir)},
        "proxy": lambda: {"proxy": proxies(binaries, proxy_sizes, echo_s, workdir, args.quick)},
        "budget": lambda: {"budget": memory_budget(binaries, workdir)},
        "compression": lambda: {"compression": compression(binaries, args.quick, echo_s, workdir)},
        "tls": lambda: {"tls": tls(binaries, args.quick, echo_s, workdir)},
        "pool": lambda: {"pool": pool(binaries, args.quick, echo_s, workdir)},
    }
    if args.only:
        for name in args.only.split(","):
            print(json.dumps(scenarios[name](), indent=1, default=str))
        return
    for run in scenarios.values():
        results.update(run())
    plot_name = None
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        plot_path = os.path.join(args.plots, "rss-vs-connections.png")
        plot(results["memory"], plot_path)
        plot_name = os.path.relpath(plot_path, os.path.dirname(os.path.abspath(args.out)))
    commands = [
        "make bench" + (" QUICK=1" if args.quick else ""),
        f"# i.e. {' '.join(sys.argv)}",
        "# vigild:   vigild --listen 127.0.0.1:0 --status-listen 127.0.0.1:0 --log stderr "
        "--max-connections 20000 --ping-interval P --pong-timeout T (every other setting at its default)",
        "# baseline: baseline-gorilla -addr 127.0.0.1:0 -ping-interval P -pong-timeout T",
        "# load:     vigil-load --url ws://… -c N [--no-pong | --mode echo --message-size 64] --duration …",
        "#           load-gorilla --url ws://… -c N --duration … --progress 100ms (the heartbeat's second client)",
        "#           load-gorilla --url ws://… -c 50 --mode echo --message-size 64|16384 --rate 0|R --duration … "
        "(the proxy's outside client)",
        "# counts:   strace -c -f -p PID; LD_PRELOAD=libmalloc_count.so MALLOC_COUNT_FILE=… vigild …; "
        "valgrind --tool=callgrind --instr-atstart=no (callgrind_control -i on / -z / -d)",
        "# proxies:  vigild --mode proxy --upstream ws://BACKEND --listen 127.0.0.1:0 … | nginx -p TMP -c nginx.conf | "
        "haproxy -W -db -f haproxy.cfg | caddy run --config Caddyfile --adapter caddyfile (Benchmarks/proxies/)",
        "# tls:      vigild --mode proxy --tls-cert-file … --tls-key-file … | nginx -p TMP -c nginx-tls.conf; "
        "vigil-load --url wss://… --ca-file CA",
        "# pool:     vigild --config vigil.yaml (routes: one route, upstream: the three backends, balance: round_robin) | "
        "nginx -p TMP -c nginx-pool.conf (upstream block of the same three); three baseline-gorilla backends",
    ]
    results["commands"], results["plot"] = commands, plot_name
    text = report(results, args, commands, plot_name)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(text)
    problems = (budget_problems(results["budget"]) + compression_problems(results["compression"])
                + tls_problems(results["tls"]) + pool_problems(results["pool"]))
    if args.quick:
        problems += check_quick(results)
    if problems:
        print("\n".join(["bench problems:"] + problems), file=sys.stderr)
        sys.exit(1)
    if args.quick:
        log("quick run: every scenario ran and produced numbers, inside the memory budget")


if __name__ == "__main__":
    main()
