#!/usr/bin/env python3
"""Autobahn|Testsuite against both sides of vigil's supervised connection and its proxy, every
case group including 12 and 13 (permessage-deflate, which every side negotiates at its
defaults), failing on anything that is not OK except the cases listed with their reason in
accepted-server.tsv / accepted-client.tsv / accepted-proxy.tsv (docs/hardening.md shows the
same lists).

Groups 12 and 13 send 1,000 messages per case and take about 8 minutes per side, mostly in
Autobahn's own Python: by default each of their twelve subgroups (every payload kind, every
negotiated offer) runs its cases of up to 16 KiB whole and 8 and 16 KiB in 256-byte fragments
(SAMPLED_CASES); `--full` (make conformance-full) runs all of them, up to 128 KiB messages in
fragments of 256 bytes to 32 KiB.

- server: the fuzzingclient against vigild in echo mode, with max_frame and max_message raised to
  16 MiB (group 9 sends messages that large) and every other setting at its default;
- client: the fuzzingserver, with `vigil-load --echo-peer --deflate` as the client under test
  (offering permessage-deflate as targets do): one run per case, `ws://HOST:PORT/runCase?case=N&agent=vigil`, then `/updateReports?agent=vigil`;
- proxy: the fuzzingclient against vigild in proxy mode in front of a conformant echo backend
  (Python websockets, Tests/blackbox/backend.py, negotiating permessage-deflate), same limits as
  the server side: the proxy must be transparent, compressed messages passed through.

Autobahn comes from Docker's crossbario/autobahn-testsuite image when an engine answers, else
from PyPI's autobahntestsuite 0.8.2 in a Python 2.7 virtualenv (pyenv's 2.7.18) under
.build-autobahn/. Usage: run_autobahn.py VIGILD VIGIL_LOAD [--full] [server|client|proxy ...]
"""

import asyncio
import collections
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, ".build-autobahn")
OK_CLOSE = {"OK", "INFORMATIONAL"}
# Cases 12.X.Y and 13.X.Y by Y (Autobahn's MSG_SIZES): 1-7 are 16 B to 16 KiB whole, 8-10 are
# 32 to 128 KiB whole, 11-15 are 8 to 128 KiB in 256-byte fragments, 16-18 are 128 KiB in 1, 4
# and 32 KiB fragments. The default run leaves out the large ones.
SAMPLED_OUT = [8, 9, 10, 13, 14, 15, 16, 17, 18]
EXCLUDED = [f"{group}.*.{y}" for group in (12, 13) for y in SAMPLED_OUT]


def log(message):
    print(f"[conformance] {message}", flush=True)


def docker_available():
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def python2():
    """pyenv's Python 2.7 (or any python2.7 on PATH)."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        candidates = sorted(p for p in os.listdir(os.path.join(root, "versions")) if p.startswith("2.7"))
        if candidates:
            return os.path.join(root, "versions", candidates[-1], "bin", "python2.7")
    except (OSError, subprocess.CalledProcessError):
        pass
    found = shutil.which("python2.7")
    if found:
        return found
    sys.exit("conformance: no Docker engine and no Python 2.7 (pyenv install 2.7.18) to run Autobahn with")


def wstest_command(mode, spec):
    if docker_available():
        log("using the crossbario/autobahn-testsuite Docker image")
        return ["docker", "run", "--rm", "--network", "host", "-v", f"{WORK}:{WORK}", "-w", WORK,
                "crossbario/autobahn-testsuite", "wstest", "-m", mode, "-s", spec]
    wstest = os.path.join(WORK, "py2", "bin", "wstest")
    if not os.path.exists(wstest):
        log("setting up Autobahn|Testsuite 0.8.2 under Python 2.7 (once)")
        venv3 = os.path.join(WORK, "py3")
        subprocess.run([sys.executable, "-m", "venv", venv3], check=True)
        subprocess.run([os.path.join(venv3, "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        "virtualenv==20.21.1"], check=True)
        subprocess.run([os.path.join(venv3, "bin", "virtualenv"), "-q", "-p", python2(), os.path.join(WORK, "py2")],
                       check=True)
        subprocess.run([os.path.join(WORK, "py2", "bin", "pip"), "install", "-q", "--disable-pip-version-check",
                        "autobahntestsuite==0.8.2"], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return [wstest, "-m", mode, "-s", spec]


def free_port():
    """A port for the fuzzingserver, which binds it itself a moment later. Taken below the
    kernel's ephemeral range, where no outgoing connection and no port-0 listener can take it in
    between (a run once lost its port that way: "Couldn't listen on any:33667")."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    candidates = range(1024, low) if low > 1224 else range(low, 65536)  # an odd range: fall back above it
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("", port))  # wstest listens on every address
            except OSError:
                continue
            return port
    sys.exit("conformance: no free port below the ephemeral range")


def start_vigild(binary, *mode):
    log_path = os.path.join(WORK, "vigild.log")
    out = open(log_path, "w")
    # Group 9 sends messages up to 16 MiB: only the frame and message limits are raised for it.
    # Every other setting stays at its default, as a user has it: max_backlog, write_timeout and
    # the heartbeat (a ping every 30 s, which a case lasting longer must answer) included.
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--log", "stderr",
                             "--log-level", "warning", *(mode or ["--mode", "echo"]), "--max-frame", "16MiB",
                             "--max-message", "16MiB"], stderr=out, stdout=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"vigild ready ws=(ws://[^\s\"]+)", open(log_path).read())
        if match:
            return proc, match.group(1)
        time.sleep(0.05)
    proc.kill()
    sys.exit("conformance: vigild did not start:\n" + open(log_path).read())


def run_server_side(vigild, agent="vigild", mode=()):
    """The fuzzingclient against vigild: results for `agent`."""
    reports = os.path.join(WORK, "reports", agent)
    shutil.rmtree(reports, ignore_errors=True)
    proc, url = start_vigild(vigild, *mode)
    spec = os.path.join(WORK, f"fuzzingclient-{agent}.json")
    with open(spec, "w") as f:
        json.dump({"outdir": reports, "servers": [{"agent": agent, "url": url}], "cases": ["*"],
                   "exclude-cases": EXCLUDED, "exclude-agent-cases": {}}, f)
    try:
        result = subprocess.run(wstest_command("fuzzingclient", spec), capture_output=True, text=True, cwd=WORK,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if result.returncode != 0:
            sys.exit(f"conformance: wstest failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    finally:
        proc.terminate()
        proc.wait(15)
    return json.load(open(os.path.join(reports, "index.json")))[agent], url


def run_proxy_side(vigild):
    """The fuzzingclient against vigild in proxy mode, in front of a conformant echo backend."""
    backend = subprocess.Popen([sys.executable, os.path.join(ROOT, "Tests", "blackbox", "backend.py")],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "BACKEND_PLAIN_ECHO": "1", "BACKEND_COMPRESSION": "1"})
    try:
        port = int(backend.stdout.readline().split()[1])
        threading.Thread(target=lambda: backend.stdout.read(), daemon=True).start()  # keep its pipe drained
        return run_server_side(vigild, "vigild-proxy", ["--mode", "proxy", "--upstream", f"ws://127.0.0.1:{port}/"])
    finally:
        backend.kill()
        backend.wait()


async def case_count(url):
    async with websockets.connect(f"{url}/getCaseCount") as ws:
        return int(await ws.recv())


async def update_reports(url):
    async with websockets.connect(f"{url}/updateReports?agent=vigil") as ws:
        try:
            await ws.recv()
        except websockets.exceptions.ConnectionClosed:
            pass


def run_client_side(load):
    """The fuzzingserver, with vigil-load --echo-peer connecting once per case: agent "vigil"."""
    reports = os.path.join(WORK, "reports", "clients")
    shutil.rmtree(reports, ignore_errors=True)
    url = f"ws://127.0.0.1:{free_port()}"
    spec = os.path.join(WORK, "fuzzingserver.json")
    with open(spec, "w") as f:
        json.dump({"url": url, "outdir": reports, "cases": ["*"], "exclude-cases": EXCLUDED,
                   "exclude-agent-cases": {}}, f)
    server_log = open(os.path.join(WORK, "fuzzingserver.log"), "w")
    server = subprocess.Popen(wstest_command("fuzzingserver", spec), stdout=server_log, stderr=server_log, cwd=WORK,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                count = asyncio.run(case_count(url))
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("conformance: the fuzzingserver did not start:\n"
                             + open(os.path.join(WORK, "fuzzingserver.log")).read()[-2000:])
                time.sleep(0.2)
        failures = []
        peer_log = open(os.path.join(WORK, "echo-peer.log"), "w")
        for case in range(1, count + 1):
            peer_log.write(f"--- case {case}\n")
            peer_log.flush()
            result = subprocess.run([load, "--echo-peer", "--deflate", "--url", f"{url}/runCase?case={case}&agent=vigil"],
                                    stdout=peer_log, stderr=peer_log, timeout=120)
            if result.returncode != 0:
                failures.append(f"  case {case}: vigil-load --echo-peer exited {result.returncode}")
        asyncio.run(update_reports(url))
    finally:
        server.terminate()
        server.wait(15)
    if failures:
        print("conformance: the echo peer failed locally:\n" + "\n".join(failures))
        sys.exit(1)
    return json.load(open(os.path.join(reports, "index.json")))["vigil"], url


def accepted_cases(side):
    accepted = {}
    for line in open(os.path.join(HERE, f"accepted-{side}.tsv")):
        if line.strip() and not line.startswith("#"):
            case, behavior, why = line.rstrip("\n").split("\t")
            accepted[case] = (behavior, why)
    return accepted


def case_key(case):
    return [int(part) for part in case.split(".")]


def judge(side, results, url, seconds):
    """Prints the summary; returns the lines that fail the run."""
    behaviors = collections.Counter(r["behavior"] for r in results.values())
    closes = collections.Counter(r["behaviorClose"] for r in results.values())
    log(f"{side} side: {len(results)} cases in {seconds:.0f} s against {url}")
    print("behavior:       " + ", ".join(f"{k} {v}" for k, v in sorted(behaviors.items())))
    print("behaviorClose:  " + ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))
    accepted = accepted_cases(side)
    problems = []
    for case in sorted(results, key=case_key):
        r = results[case]
        if r["behavior"] == "OK" and r["behaviorClose"] == "OK":
            continue
        reason = accepted.get(case)
        line = f"  {case}: {r['behavior']} / close {r['behaviorClose']} (close code {r.get('remoteCloseCode')})"
        if r["behavior"] == "FAILED" or r["behaviorClose"] not in OK_CLOSE or reason is None \
                or reason[0] != r["behavior"]:
            problems.append(f"{side} {line}" + ("" if reason else f" — not in accepted-{side}.tsv"))
        else:
            print(line + f" — {reason[1]}")
    return problems


def main():
    global EXCLUDED
    vigild, load = sys.argv[1], sys.argv[2]
    sides = [arg for arg in sys.argv[3:] if arg != "--full"] or ["server", "client", "proxy"]
    if "--full" in sys.argv[3:]:
        EXCLUDED = []
    log("every case" if not EXCLUDED else "every case but the large ones of 12 and 13 (--full runs them): "
        + ", ".join(EXCLUDED))
    os.makedirs(WORK, exist_ok=True)
    problems = []
    for side in sides:
        started = time.monotonic()
        if side == "server":
            results, url = run_server_side(vigild)
        elif side == "proxy":
            results, url = run_proxy_side(vigild)
        else:
            results, url = run_client_side(load)
        problems += judge(side, results, url, time.monotonic() - started)
    if problems:
        print("conformance FAILED:\n" + "\n".join(problems))
        sys.exit(1)
    print(f"conformance: 0 FAILED on the {' and '.join(sides)} side(s); every other result is explained in "
          + ", ".join(f"Tests/conformance/accepted-{side}.tsv" for side in sides))


if __name__ == "__main__":
    main()
