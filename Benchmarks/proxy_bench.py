"""The proxy comparison: vigild in proxy mode against nginx, HAProxy and Caddy, and the backend
reached directly, all in front of the same backend (the gorilla baseline, which echoes on /ws and
prints a close line per ended connection; it pings only every hour here, so only the proxy's own
behaviour is measured).

For each target: echo latency over 50 connections and the proxy's CPU per 1000 relayed messages,
closed loop (as fast as each target goes) and paced (the same fixed rate for every target, each
message timed from when it was due: latency at an equal load), each driven once by vigil-load and
once by load-gorilla (Go, gorilla/websocket: a client that shares no code with vigild, so a cost
or a speed that only vigil's own client sees shows as a difference between the two), and closed
loop with 16 KiB messages (load-gorilla), where the relay's cost is the bytes it copies rather
than the messages it handles;
RSS per proxied pair with N idle pairs open; and what the proxy does when its client freezes
(SIGSTOP on the load process: the client's kernel still acknowledges, nothing answers pings).
nginx, HAProxy and Caddy run in the foreground on loopback ports from the templates in
Benchmarks/proxies/, each checked first with its own tool; logs, pid files and temp paths go to a
temp dir. Called by bench.py's "proxy" scenario.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from bench import Load, Server, free_port, log, percentile, proc_cpu, proc_rss, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "proxies")
TARGETS = ("direct", "vigild", "nginx", "haproxy", "caddy")
FROZEN_N = 100
ECHO_N = 50
ECHO_SIZE = 64
# The large-message echo: where a relay's cost is the bytes it moves, not the messages.
LARGE_SIZE = 16384
# The paced echo's round trips a second (all connections): well under what every target
# relays closed-loop on this machine, so each is compared at the same load, not at its own.
PACED_RATE = 10000


def descendants(pid):
    """pid and every process under it (nginx's and HAProxy's workers), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def established(pid, port):
    """The backend's accepted legs: ESTABLISHED TCP sockets held by process `pid` whose local port
    is `port` (its listening port), from /proc/PID/fd and /proc/net/tcp."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def render(name, workdir, values):
    """The template Benchmarks/proxies/NAME with its @PLACEHOLDERS@ filled in, written to workdir."""
    with open(os.path.join(TEMPLATES, name)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@[A-Z]+@", text)))
    if left:
        raise RuntimeError(f"{name}: placeholders not filled: {left}")
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Proxy:
    """One proxy process tree under test, started in the foreground in its own session so that
    nothing of it outlives the run. `port` is where it listens (None: read from `ready`, a
    regex on its output whose group 1 is the address)."""

    def __init__(self, name, args, workdir, port=None, ready=None, env=None):
        self.name = name
        self.output = open(os.path.join(workdir, f"{name}.out"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.output, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.command = args

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.text().strip()}")
            if port is None:
                match = re.search(ready, self.text())
                return match.group(1) if match else None
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"127.0.0.1:{port}"
            except OSError:
                return None

        self.address = wait_until(listening, f"{name} to accept", 30)

    def text(self):
        self.output.flush()
        with open(self.output.name) as f:
            return f.read()

    def pids(self):
        return descendants(self.proc.pid)

    def rss(self):
        return sum(proc_rss(p) for p in self.pids())

    def cpu(self):
        return sum(proc_cpu(p) for p in self.pids())

    def threads(self):
        return sum(len(os.listdir(f"/proc/{p}/task")) for p in self.pids())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: workers left behind, if any
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.output.close()


def executable(name):
    """The proxy's binary: on PATH, else in /usr/sbin (nginx and HAProxy live there, and a
    non-root shell on Debian often has no /usr/sbin on PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def check_config(name, path, tmp, env):
    """The proxy's own configuration check; raises with its output if it fails."""
    command = {"nginx": [executable("nginx"), "-t", "-p", tmp, "-c", path],
               "haproxy": [executable("haproxy"), "-c", "-f", path],
               "caddy": [executable("caddy"), "validate", "--config", path, "--adapter", "caddyfile"]}[name]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}): {output}")
    return {"command": " ".join(command), "output": output}


def versions():
    found = {}
    for name, command in (("nginx", ["nginx", "-v"]), ("haproxy", ["haproxy", "-v"]),
                          ("caddy", ["caddy", "version"])):
        if executable(name) is None:
            found[name] = None
            continue
        done = subprocess.run([executable(name), *command[1:]], capture_output=True, text=True, timeout=30)
        found[name] = (done.stdout + done.stderr).strip().splitlines()[0]
    return found


class Setup:
    """Starts the backend and, in front of it, one target: `proxy` is None for direct."""

    def __init__(self, target, binaries, workdir, pairs, ping="30s", pong="10s", backend_extra=()):
        self.backend = Server("baseline", binaries, "1h", "1h", workdir, extra=backend_extra)
        self.proxy = None
        self.check = None
        self.tmp = os.path.join(workdir, f"{target}-{time.monotonic_ns()}")
        os.makedirs(self.tmp)
        try:
            self.proxy = self._start(target, binaries, pairs, ping, pong)
        except BaseException:
            self.backend.stop()
            raise
        self.url = f"ws://{self.proxy.address if self.proxy else self.backend.address}/ws"

    def _start(self, target, b, pairs, ping, pong):
        backend = self.backend.address
        if target == "direct":
            return None
        if target == "vigild":
            args = [b.vigild, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--mode", "proxy",
                    "--upstream", f"ws://{backend}", "--log", "stderr",
                    "--max-connections", "20000",
                    "--ping-interval", ping, "--pong-timeout", pong]
            return Proxy("vigild", args, self.tmp, ready=r"vigild ready ws=ws://([\d.]+:\d+)/")
        binary = executable(target)
        if binary is None:
            raise RuntimeError(f"{target} is not installed (no `{target}` on PATH or in /usr/sbin)")
        env = dict(os.environ, XDG_CONFIG_HOME=self.tmp, XDG_DATA_HOME=self.tmp)
        for attempt in range(5):
            port = free_port()  # free when asked; another process may take it before the proxy binds
            # nginx closes idle connections once no more than 1/16 of worker_connections are free:
            # 3 per pair keeps it well clear of that. HAProxy's maxconn counts client connections.
            values = {"LISTEN": f"127.0.0.1:{port}", "BACKEND": backend, "TMP": self.tmp,
                      "CONNECTIONS": 3 * pairs + 512, "MAXCONN": pairs + 256}
            if target == "nginx":
                path = render("nginx.conf", self.tmp, values)
                args = [binary, "-p", self.tmp, "-c", path]
            elif target == "haproxy":
                path = render("haproxy.cfg", self.tmp, values)
                args = [binary, "-W", "-db", "-f", path]
            else:
                path = render("Caddyfile", self.tmp, values)
                args = [binary, "run", "--config", path, "--adapter", "caddyfile"]
            self.check = check_config(target, path, self.tmp, env)
            try:
                return Proxy(target, args, self.tmp, port=port, env=env)
            except RuntimeError as error:
                if "in use" not in str(error) or attempt == 4:
                    raise
                log(f"{target}: port {port} taken before it bound, trying another ({error})")

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        self.backend.stop()


def echo_run(target, b, seconds, workdir, pairs, load, rate=0, size=ECHO_SIZE):
    """ECHO_N connections echoing `size`-byte messages through the target: latency, and the
    proxy's CPU over the echo window per 1000 relayed messages (each round trip relays two, one
    each way). `load` is the load generator's binary: b.load (vigil-load) or b.load_go
    (load-gorilla), which take the same flags and print the same lines. `rate` > 0: paced at
    that many round trips a second in all (open loop)."""
    generator = os.path.basename(load)
    setup = Setup(target, b, workdir, pairs)
    try:
        client = Load(load, setup.url, "-c", str(ECHO_N), "--mode", "echo", "--message-size", str(size),
                      "--duration", f"{seconds}s", "--rate", str(rate))
        try:
            connected = client.event("connected", 60)
            start_cpu = setup.proxy.cpu() if setup.proxy else None
            report = client.event("echo", seconds + 60)
            cpu = setup.proxy.cpu() - start_cpu if setup.proxy else None
            client.finish(60)
        finally:
            client.kill()
        relayed = 2 * report["messages"]
        entry = {"load": generator, "message_size": size, "paced_rate": rate,
                 "connected": connected["connections"], "rate": report["rate"], "round_trips": report["messages"],
                 "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"], "cpu_s": cpu, "relayed": relayed,
                 "cpu_ms_per_1000": cpu * 1000 / (relayed / 1000) if cpu is not None and relayed else None,
                 "processes": len(setup.proxy.pids()) if setup.proxy else None,
                 "threads": setup.proxy.threads() if setup.proxy else None,
                 "config_check": setup.check}
        if setup.proxy:
            entry["command"] = " ".join(setup.proxy.command)
    finally:
        setup.stop()
    log(f"proxy echo {target} ({generator}, {size} B{f', paced at {rate}/s' if rate else ''}): "
        f"p50 {entry['p50_ms']:.3f} ms, p99 {entry['p99_ms']:.3f} ms, {entry['rate']:.0f} round trips/s, "
        f"proxy CPU {entry['cpu_ms_per_1000']} ms per 1000 relayed")
    return entry


def memory_run(target, b, n, workdir, pairs):
    """RSS of the proxy's processes with n idle pairs open, minus before, over n."""
    setup = Setup(target, b, workdir, pairs)
    try:
        time.sleep(1)
        before = setup.proxy.rss()
        load = Load(b.load, setup.url, "-c", str(n), "--duration", "600s", "--no-close")
        try:
            connected = load.event("connected", 300)
            time.sleep(3)  # let allocations settle, as bench.py's idle memory does
            after = setup.proxy.rss()
            legs = established(setup.backend.pid, int(setup.backend.address.rsplit(":", 1)[1]))
        finally:
            load.kill()
    finally:
        setup.stop()
    entry = {"n": n, "connected": connected["connections"], "backend_legs": legs, "rss_before": before,
             "rss_after": after, "per_pair": (after - before) / n}
    log(f"proxy memory {target} N={n}: {entry['per_pair'] / 1024:.2f} KiB/pair ({legs} backend legs, "
        f"RSS {before / 2**20:.1f} → {after / 2**20:.1f} MiB)")
    return entry


def frozen_run(target, b, window, workdir, pairs):
    """FROZEN_N connections through the target, the load process frozen with SIGSTOP: when does
    the backend see its legs close? vigild pings every 1 s with a 1 s pong timeout here."""
    setup = Setup(target, b, workdir, pairs, ping="1s", pong="1s")
    try:
        load = Load(b.load, setup.url, "-c", str(FROZEN_N), "--duration", "600s", "--no-close")
        try:
            connected = load.event("connected", 60)
            time.sleep(1.5)  # a ping or two answered
            frozen_at = time.time_ns()
            os.kill(load.proc.pid, signal.SIGSTOP)
            deadline = time.monotonic() + window
            while time.monotonic() < deadline and setup.backend.close_count() < FROZEN_N:
                time.sleep(0.05)
            time.sleep(0.2)  # the backend flushes its close lines every 100 ms
            closes = [(t, cause) for t, cause in setup.backend.close_times() if t >= frozen_at]
        finally:
            load.kill()
    finally:
        setup.stop()
    latencies = [(t - frozen_at) / 1e9 for t, _ in closes if t - frozen_at <= window * 1e9]
    causes = {}
    for _, cause in closes:
        causes[cause] = causes.get(cause, 0) + 1
    entry = {"n": FROZEN_N, "connected": connected["connections"], "window_s": window,
             "closed_in_window": len(latencies), "causes": causes,
             "p50_s": percentile(latencies, 50), "max_s": max(latencies) if latencies else None}
    log(f"proxy frozen {target}: {len(latencies)} of {FROZEN_N} backend legs closed within {window} s"
        + (f", last after {entry['max_s']:.2f} s" if latencies else "") + f" {causes}")
    return entry


# The echo runs each target gets, by the key its entry is stored under: (load generator's
# attribute on the binaries, paced or not, message size). "echo" and "paced" are vigil-load's
# (the keys older saved results have); the rest use load-gorilla, the outside client #29 asks for.
ECHO_KINDS = {
    "echo": ("load", False, ECHO_SIZE),
    "paced": ("load", True, ECHO_SIZE),
    "echo_outside": ("load_go", False, ECHO_SIZE),
    "paced_outside": ("load_go", True, ECHO_SIZE),
    "echo_16k": ("load_go", False, LARGE_SIZE),
}


def proxy_comparison(binaries, sizes, seconds, workdir, quick):
    """Every target's echo, memory and frozen-client numbers; a target that cannot be configured
    or run gets {"error": text} instead, so the report says why. The load-gorilla runs fail on
    their own ({"error": text} in that run's entry): the target's other rows still stand."""
    window = 5 if quick else 20
    pairs = max(sizes)
    paced_rate = PACED_RATE // 5 if quick else PACED_RATE
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sizes": sizes, "echo_seconds": seconds, "echo_n": ECHO_N, "message_size": ECHO_SIZE, "paced_rate": paced_rate,
              "large_message_size": LARGE_SIZE, "frozen_window_s": window, "frozen_n": FROZEN_N, "versions": versions(),
              "targets": {}}

    def run(target, kind):
        attribute, paced, size = ECHO_KINDS[kind]
        return echo_run(target, binaries, seconds, workdir, pairs, getattr(binaries, attribute),
                        rate=paced_rate if paced else 0, size=size)

    for target in TARGETS:
        entry = {}
        try:
            entry["echo"] = run(target, "echo")
            entry["paced"] = run(target, "paced")
            for kind in ("echo_outside", "paced_outside", "echo_16k"):
                try:
                    entry[kind] = run(target, kind)
                except Exception as error:  # noqa: BLE001 - the report shows it in that row
                    entry[kind] = {"error": f"{type(error).__name__}: {error}"}
                    log(f"proxy {target} {kind}: {entry[kind]['error']}")
            if target != "direct":
                entry["memory"] = [memory_run(target, binaries, n, workdir, pairs) for n in sizes]
            entry["frozen"] = frozen_run(target, binaries, window, workdir, pairs)
        except Exception as error:  # noqa: BLE001 - the report shows it instead of leaving the row out
            entry["error"] = f"{type(error).__name__}: {error}"
            log(f"proxy {target}: {entry['error']}")
        result["targets"][target] = entry
    for kind in ECHO_KINDS:
        direct = result["targets"]["direct"].get(kind)
        for target in TARGETS[1:]:
            echo = result["targets"][target].get(kind)
            if echo and direct and "error" not in echo and "error" not in direct:
                echo["added_p50_ms"] = echo["p50_ms"] - direct["p50_ms"]
                echo["added_p99_ms"] = echo["p99_ms"] - direct["p99_ms"]
    return result
