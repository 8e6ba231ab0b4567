"""TLS on the listener: what terminating TLS costs vigild, next to nginx doing the same in front
of the same backend (the gorilla baseline, echoing on /ws). Called by bench.py's "tls" scenario.

- echo: ECHO_N connections echoing ECHO_SIZE-byte messages over wss:// (TLS 1.3, a P-256
  certificate from a throwaway CA), through vigild's proxy and through nginx, closed loop: the
  proxy's CPU per 1000 relayed messages (two per round trip) and the round trips' p99.
- memory: RSS per idle connection of vigild in echo mode, over wss:// and over plain ws:// (the
  difference is what a TLS session holds), and per idle TLS pair of vigild's proxy and nginx.

The figures are measured, not targets yet: the relay-cost issue sets those.
"""

import os
import subprocess
import time

from bench import Load, Server, free_port, log
from proxy_bench import Proxy, check_config, executable, render

ECHO_N = 50
ECHO_SIZE = 64


def certificate(workdir):
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca, chain, key) paths."""
    directory = os.path.join(workdir, "tls")
    os.makedirs(directory, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", *curve, "-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "site.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "site.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "site.crt",
        "-days", "2", "-extfile", "site.ext")
    chain = os.path.join(directory, "site.pem")
    with open(chain, "w") as out:
        for name in ("site.crt", "ca.pem"):
            with open(os.path.join(directory, name)) as f:
                out.write(f.read())
    return os.path.join(directory, "ca.pem"), chain, os.path.join(directory, "site.key")


class TLSProxy:
    """The backend and, in front of it, vigild's proxy or nginx terminating TLS."""

    def __init__(self, target, b, workdir, pairs, cert):
        _, chain, key = cert
        self.backend = Server("baseline", b, "1h", "1h", workdir)
        self.tmp = os.path.join(workdir, f"tls-{target}-{time.monotonic_ns()}")
        os.makedirs(self.tmp)
        try:
            if target == "vigild":
                args = [b.vigild, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--mode", "proxy",
                        "--upstream", f"ws://{self.backend.address}", "--log", "stderr",
                        "--max-connections", "20000", "--tls-cert-file", chain, "--tls-key-file", key]
                self.proxy = Proxy("vigild", args, self.tmp, ready=r"vigild ready ws=wss://([\d.]+:\d+)/")
                self.check = None
            else:
                if executable("nginx") is None:
                    raise RuntimeError("nginx is not installed")
                port = free_port()
                path = render("nginx-tls.conf", self.tmp, {
                    "LISTEN": f"127.0.0.1:{port}", "BACKEND": self.backend.address, "TMP": self.tmp,
                    "CONNECTIONS": 3 * pairs + 512, "CERT": chain, "KEY": key})
                self.check = check_config("nginx", path, self.tmp, dict(os.environ))
                self.proxy = Proxy("nginx", [executable("nginx"), "-p", self.tmp, "-c", path], self.tmp, port=port)
        except BaseException:
            self.backend.stop()
            raise
        self.url = f"wss://{self.proxy.address}/ws"

    def stop(self):
        self.proxy.stop()
        self.backend.stop()


def echo(b, seconds, workdir, cert):
    result = {"n": ECHO_N, "size": ECHO_SIZE, "seconds": seconds, "targets": {}}
    for target in ("vigild", "nginx"):
        try:
            setup = TLSProxy(target, b, workdir, ECHO_N, cert)
        except Exception as error:  # noqa: BLE001 - the report says why the row is missing
            result["targets"][target] = {"error": f"{type(error).__name__}: {error}"}
            continue
        try:
            load = Load(b.load, setup.url, "--ca-file", cert[0], "-c", str(ECHO_N), "--mode", "echo",
                        "--message-size", str(ECHO_SIZE), "--duration", f"{seconds}s")
            try:
                connected = load.event("connected", 60)
                start = setup.proxy.cpu()
                report = load.event("echo", seconds + 60)
                spent = setup.proxy.cpu() - start
                load.finish(60)
            finally:
                load.kill()
        finally:
            setup.stop()
        relayed = 2 * report["messages"]
        entry = {"connected": connected["connections"], "rate": report["rate"], "round_trips": report["messages"],
                 "p50_ms": report["p50_ms"], "p99_ms": report["p99_ms"], "cpu_s": spent,
                 "cpu_ms_per_1000": spent * 1000 / (relayed / 1000) if relayed else None,
                 "command": " ".join(setup.proxy.command), "config_check": setup.check}
        result["targets"][target] = entry
        log(f"tls echo {target}: {entry['rate']:.0f} round trips/s, p99 {entry['p99_ms']} ms, "
            f"proxy CPU {entry['cpu_ms_per_1000']:.1f} ms per 1000 relayed")
    vigild, nginx = (result["targets"].get(t, {}).get("cpu_ms_per_1000") for t in ("vigild", "nginx"))
    result["cpu_ratio_vs_nginx"] = vigild / nginx if vigild and nginx else None
    return result


def idle_rss(url, measure, b, n, cert):
    """`measure()` (an RSS) before and with n idle connections to `url` open: bytes per connection."""
    time.sleep(1)
    before = measure()
    load = Load(b.load, url, *(["--ca-file", cert[0]] if url.startswith("wss:") else []), "-c", str(n),
                "--duration", "600s", "--no-close")
    try:
        connected = load.event("connected", 300)
        time.sleep(3)  # let allocations settle, as the idle memory scenario does
        after = measure()
    finally:
        load.kill()
    return {"n": n, "connected": connected["connections"], "rss_before": before, "rss_after": after,
            "per_conn": (after - before) / n}


def memory(b, n, workdir, cert):
    _, chain, key = cert
    result = {}
    for name, extra in (("vigild_plain", []), ("vigild_tls", ["--tls-cert-file", chain, "--tls-key-file", key])):
        server = Server("vigild", b, "30s", "10s", workdir, extra=extra)
        try:
            result[name] = idle_rss(server.url, server.rss, b, n, cert)
        finally:
            server.stop()
        log(f"tls memory {name} N={n}: {result[name]['per_conn'] / 1024:.2f} KiB/conn")
    result["tls_extra_kib"] = (result["vigild_tls"]["per_conn"] - result["vigild_plain"]["per_conn"]) / 1024
    pairs = max(100, n // 2)
    for target in ("vigild", "nginx"):
        try:
            setup = TLSProxy(target, b, workdir, pairs, cert)
        except Exception as error:  # noqa: BLE001
            result[f"{target}_pair"] = {"error": f"{type(error).__name__}: {error}"}
            continue
        try:
            entry = idle_rss(setup.url, setup.proxy.rss, b, pairs, cert)
        finally:
            setup.stop()
        entry["per_pair"] = entry.pop("per_conn")
        result[f"{target}_pair"] = entry
        log(f"tls memory {target} pairs N={pairs}: {entry['per_pair'] / 1024:.2f} KiB/pair")
    return result


def tls(b, quick, seconds, workdir):
    cert = certificate(workdir)
    n = 500 if quick else 2000
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "echo": echo(b, seconds, workdir, cert),
            "memory": memory(b, n, workdir, cert)}


def problems(result):
    """What makes a run's TLS figures unusable: a target that did not run, or connections missing."""
    found = []
    for target, entry in result["echo"]["targets"].items():
        if "error" in entry:
            found.append(f"tls echo {target}: {entry['error']}")
        elif entry["connected"] != result["echo"]["n"]:
            found.append(f"tls echo {target}: {entry['connected']} of {result['echo']['n']} connected")
    for name, entry in result["memory"].items():
        if isinstance(entry, dict) and "error" in entry:
            found.append(f"tls memory {name}: {entry['error']}")
        elif isinstance(entry, dict) and entry["connected"] != entry["n"]:
            found.append(f"tls memory {name}: {entry['connected']} of {entry['n']} connected")
    return found
