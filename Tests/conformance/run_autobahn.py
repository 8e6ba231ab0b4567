#!/usr/bin/env python3
"""Runs Autobahn|Testsuite's fuzzingclient against vigild in echo mode (every case group but 12
and 13, permessage-deflate) and fails on anything that is not OK, except the cases listed with
their reason in accepted.tsv (the README's Hardening section shows the same list).

Autobahn comes from Docker's crossbario/autobahn-testsuite image when an engine answers, else
from PyPI's autobahntestsuite 0.8.2 in a Python 2.7 virtualenv (pyenv's 2.7.18) under
.build-autobahn/. Usage: run_autobahn.py VIGILD
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, ".build-autobahn")
OK_CLOSE = {"OK", "INFORMATIONAL"}


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


def wstest_command(spec):
    if docker_available():
        log("using the crossbario/autobahn-testsuite Docker image")
        return ["docker", "run", "--rm", "--network", "host", "-v", f"{WORK}:{WORK}", "-w", WORK,
                "crossbario/autobahn-testsuite", "wstest", "-m", "fuzzingclient", "-s", spec]
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
    return [wstest, "-m", "fuzzingclient", "-s", spec]


def start_vigild(binary):
    log_path = os.path.join(WORK, "vigild.log")
    out = open(log_path, "w")
    # Group 9 sends messages up to 16 MiB and reads them back: raise the limits for this run only.
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0", "--log", "stderr",
                             "--log-level", "warning", "--mode", "echo", "--max-frame", "16MiB", "--max-message",
                             "16MiB", "--max-backlog", "64MiB", "--ping-interval", "0"], stderr=out, stdout=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"vigild ready ws=(ws://[^\s\"]+)", open(log_path).read())
        if match:
            return proc, match.group(1)
        time.sleep(0.05)
    proc.kill()
    sys.exit("conformance: vigild did not start:\n" + open(log_path).read())


def accepted_cases():
    accepted = {}
    for line in open(os.path.join(HERE, "accepted.tsv")):
        if line.strip() and not line.startswith("#"):
            case, behavior, why = line.rstrip("\n").split("\t")
            accepted[case] = (behavior, why)
    return accepted


def case_key(case):
    return [int(part) for part in case.split(".")]


def main():
    binary = sys.argv[1]
    os.makedirs(WORK, exist_ok=True)
    reports = os.path.join(WORK, "reports")
    shutil.rmtree(reports, ignore_errors=True)
    proc, url = start_vigild(binary)
    spec = os.path.join(WORK, "fuzzingclient.json")
    with open(spec, "w") as f:
        json.dump({"outdir": reports, "servers": [{"agent": "vigild", "url": url}], "cases": ["*"],
                   "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}, f)
    command = wstest_command(spec)
    try:
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, cwd=WORK,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if result.returncode != 0:
            sys.exit(f"conformance: wstest failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    finally:
        proc.terminate()
        proc.wait(15)
    results = json.load(open(os.path.join(reports, "index.json")))["vigild"]
    behaviors = collections.Counter(r["behavior"] for r in results.values())
    closes = collections.Counter(r["behaviorClose"] for r in results.values())
    log(f"{len(results)} cases in {time.monotonic() - started:.0f} s against {url}")
    print("behavior:       " + ", ".join(f"{k} {v}" for k, v in sorted(behaviors.items())))
    print("behaviorClose:  " + ", ".join(f"{k} {v}" for k, v in sorted(closes.items())))
    accepted = accepted_cases()
    problems = []
    for case in sorted(results, key=case_key):
        r = results[case]
        if r["behavior"] == "OK" and r["behaviorClose"] == "OK":
            continue
        reason = accepted.get(case)
        line = f"  {case}: {r['behavior']} / close {r['behaviorClose']} (close code {r.get('remoteCloseCode')})"
        if r["behavior"] == "FAILED" or r["behaviorClose"] not in OK_CLOSE or reason is None \
                or reason[0] != r["behavior"]:
            problems.append(line + ("" if reason else " — not in accepted.tsv"))
        else:
            print(line + f" — {reason[1]}")
    if problems:
        print("conformance FAILED:\n" + "\n".join(problems))
        sys.exit(1)
    print("conformance: 0 FAILED; every other result is explained in Tests/conformance/accepted.tsv")


if __name__ == "__main__":
    main()
