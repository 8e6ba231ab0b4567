"""Routes and upstream pools (#28): vigild balancing over a pool of three backends, next to nginx
doing the same with an `upstream` block of the same three. Called by bench.py's "pool" scenario.

Three instances of the proxy scenario's backend (the gorilla baseline, echoing on /ws, pinging
only every hour). vigild runs from a config file at its defaults but for max_connections (raised,
as in every scenario) and one route, `/`, to the three (`balance: round_robin`); the upstream URLs
carry no path, so the client's /ws goes to each backend as is. nginx runs
Benchmarks/proxies/nginx-pool.conf: nginx.conf's WebSocket proxying to `upstream pool` of the same
three, round robin (its default). Through each, ECHO_N connections echo ECHO_SIZE-byte messages,
closed loop, as tls_bench does: the proxy's CPU per 1000 relayed messages (two per round trip),
round trips a second, p50 and p99. While the connections are open: how they spread over the three,
counted at each backend (its ESTABLISHED sockets on its listening port, from /proc, for both
proxies) and, for vigild, from vigil_upstream_pairs_active{route,upstream} on its /metrics.

The figures are measured, not targets: the relay-cost issue (#29) sets those.
"""

import os
import re
import time
import urllib.request

from bench import Load, Server, free_port, log
from proxy_bench import Proxy, check_config, established, executable, render, versions

ECHO_N = 50
ECHO_SIZE = 64
POOL = 3
ROUTE = "pool"


def vigild_config(listen, backends):
    """vigild's config file: its defaults but for max_connections (raised) and the one route."""
    upstreams = "\n".join(f'      - "ws://{b.address}"' for b in backends)
    return (f"listen: {listen}\n"
            "status_listen: 127.0.0.1:0\n"
            "log: stderr\n"
            "max_connections: 20000\n"
            "routes:\n"
            f"  - name: {ROUTE}\n"
            "    path: /\n"
            "    upstream:\n"
            f"{upstreams}\n"
            "    balance: round_robin\n")


def metric_spread(status_url, backends):
    """vigil_upstream_pairs_active for the route, by backend address; None if vigild reports no
    such series. The upstream label is a member's name, by default `<route>-<n>` (n from 1, in
    the config's order); a label that carries the URL is matched on its host:port too."""
    with urllib.request.urlopen(status_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    found = {}
    for labels, value in re.findall(r"^vigil_upstream_pairs_active\{([^}]*)\} (\S+)$", text, re.M):
        fields = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        if fields.get("route") != ROUTE:
            continue
        label = fields.get("upstream", "")
        for index, b in enumerate(backends):
            if label == f"{ROUTE}-{index + 1}" or re.search(rf"(^|[^\d.]){re.escape(b.address)}(/|$)", label):
                found[b.address] = found.get(b.address, 0) + int(float(value))
    return found or None


class Pool:
    """Three backends and, in front of them, vigild with a pool of three or nginx's upstream block."""

    def __init__(self, target, b, workdir, pairs):
        self.backends = []
        self.tmp = os.path.join(workdir, f"pool-{target}-{time.monotonic_ns()}")
        os.makedirs(self.tmp)
        self.check = None
        self.status_url = None
        try:
            for _ in range(POOL):
                self.backends.append(Server("baseline", b, "1h", "1h", workdir))
            if target == "vigild":
                path = os.path.join(self.tmp, "vigil.yaml")
                with open(path, "w") as f:
                    f.write(vigild_config("127.0.0.1:0", self.backends))
                self.config = open(path).read()
                self.proxy = Proxy("vigild", [b.vigild, "--config", path], self.tmp,
                                   ready=r"vigild ready ws=wss?://([\d.]+:\d+)")
                self.status_url = re.search(r"vigild ready .* status=(http://[\d.]+:\d+)", self.proxy.text()).group(1)
            else:
                if executable("nginx") is None:
                    raise RuntimeError("nginx is not installed")
                port = free_port()
                first, second, third = (s.address for s in self.backends)
                path = render("nginx-pool.conf", self.tmp, {
                    "LISTEN": f"127.0.0.1:{port}", "TMP": self.tmp, "CONNECTIONS": 3 * pairs + 512,
                    "FIRST": first, "SECOND": second, "THIRD": third})
                self.config = None
                self.check = check_config("nginx", path, self.tmp, dict(os.environ))
                self.proxy = Proxy("nginx", [executable("nginx"), "-p", self.tmp, "-c", path], self.tmp, port=port)
        except BaseException:
            for backend in self.backends:
                backend.stop()
            raise
        self.url = f"ws://{self.proxy.address}/ws"

    def legs(self):
        """Each backend's accepted connections now, in pool order."""
        return [established(s.pid, int(s.address.rsplit(":", 1)[1])) for s in self.backends]

    def stop(self):
        self.proxy.stop()
        for backend in self.backends:
            backend.stop()


def echo(target, b, seconds, workdir):
    setup = Pool(target, b, workdir, ECHO_N)
    try:
        load = Load(b.load, setup.url, "-c", str(ECHO_N), "--mode", "echo", "--message-size", str(ECHO_SIZE),
                    "--duration", f"{seconds}s")
        try:
            connected = load.event("connected", 60)
            start = setup.proxy.cpu()
            # Read while every pair is open; vigild's one /metrics request falls in its CPU window
            # (a few hundred microseconds against seconds of relaying).
            legs = setup.legs()
            metric = metric_spread(setup.status_url, setup.backends) if setup.status_url else None
            report = load.event("echo", seconds + 60)
            spent = setup.proxy.cpu() - start
            load.finish(60)
        finally:
            load.kill()
        backends = [s.address for s in setup.backends]
    finally:
        setup.stop()
    relayed = 2 * report["messages"]
    entry = {"connected": connected["connections"], "rate": report["rate"], "round_trips": report["messages"],
             "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"], "cpu_s": spent,
             "cpu_ms_per_1000": spent * 1000 / (relayed / 1000) if relayed else None,
             "backend_legs": legs,
             "pairs_active_metric": [metric.get(a, 0) for a in backends] if metric is not None else None,
             "command": " ".join(setup.proxy.command), "config": setup.config, "config_check": setup.check}
    log(f"pool echo {target}: {entry['rate']:.0f} round trips/s, p99 {entry['p99_ms']} ms, proxy CPU "
        f"{entry['cpu_ms_per_1000']:.1f} ms per 1000 relayed; backend legs {legs}"
        + (f", vigil_upstream_pairs_active {entry['pairs_active_metric']}" if target == "vigild" else ""))
    return entry


def pool(b, quick, seconds, workdir):
    """vigild's pool and nginx's upstream block, each in front of three fresh backends."""
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": ECHO_N, "size": ECHO_SIZE,
              "seconds": seconds, "pool": POOL, "nginx_version": versions().get("nginx"), "targets": {}}
    for target in ("vigild", "nginx"):
        try:
            result["targets"][target] = echo(target, b, seconds, workdir)
        except Exception as error:  # noqa: BLE001 - the report says why the row is missing
            result["targets"][target] = {"error": f"{type(error).__name__}: {error}"}
            log(f"pool {target}: {result['targets'][target]['error']}")
    vigild, nginx = (result["targets"][t].get("cpu_ms_per_1000") for t in ("vigild", "nginx"))
    result["cpu_ratio_vs_nginx"] = vigild / nginx if vigild and nginx else None
    return result


def problems(result):
    """What makes a run's pool figures unusable: a target that did not run, connections missing,
    a backend the pool never used, or vigild's metric disagreeing with the backends' own count."""
    found = []
    for target, entry in result["targets"].items():
        if "error" in entry:
            found.append(f"pool {target}: {entry['error']}")
            continue
        if entry["connected"] != result["n"]:
            found.append(f"pool {target}: {entry['connected']} of {result['n']} connected")
        if sum(entry["backend_legs"]) != result["n"] or 0 in entry["backend_legs"]:
            found.append(f"pool {target}: backend legs {entry['backend_legs']}, expected {result['n']} over all "
                         f"{result['pool']}")
        if target == "vigild" and entry["pairs_active_metric"] != entry["backend_legs"]:
            found.append(f"pool vigild: vigil_upstream_pairs_active {entry['pairs_active_metric']} against "
                         f"backend legs {entry['backend_legs']}")
    return found
