"""A real service manager for tests: systemd booted in a throwaway nspawn container.

`--volatile=yes` gives the container a tmpfs root with the host's /usr read-only, so nothing it
does reaches the host (see ../shared/notes/systemd-in-a-sandbox.md: booting a system manager
over the shared root once wiped /tmp). It shares the host's network: its services listen on the
host's loopback. The test's folder is bound at /mnt/t (outside /tmp, which tmpfiles cleans)."""

import glob
import os
import shutil
import subprocess
import time

from systemd_support import journal_entries, wait_until

TARGET = """[Unit]
Description=vigil test target
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald.service
"""


class Container:
    def __init__(self, workdir, units_dir, name, binds=()):
        self.name = name
        with open(os.path.join(units_dir, "test.target"), "w") as f:
            f.write(TARGET)
        # Once a first nspawn has mounted the name=systemd hierarchy on the host, later ones attach
        # to its payload/supervisor groups without creating them: make sure they exist.
        if os.path.ismount("/sys/fs/cgroup/systemd"):
            for group in ["payload", "supervisor"]:
                os.makedirs(f"/sys/fs/cgroup/systemd/{group}", exist_ok=True)
        args = ["systemd-nspawn", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit", "-M", name,
                f"--bind={workdir}:/mnt/t", f"--bind-ro={units_dir}:/etc/systemd/system", "--console=pipe"]
        args += [f"--bind-ro={source}:{target}" for source, target in binds]
        if os.path.isdir("/opt/swift"):
            args.append("--bind-ro=/opt/swift")  # the toolchain's runtime, for a debug build of vigild
        args += ["-b", "--", "--unit=test.target"] + (["--log-level=debug"] if os.environ.get("NSPAWN_DEBUG") else [])
        self.log = open(os.path.join(workdir, f"{name}.console"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.leader = self._wait_for_leader()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the container's systemd did not come up (state {state!r})")

    def _wait_for_leader(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}")
            for path in glob.glob(f"/proc/{self.proc.pid}/task/*/children"):
                children = open(path).read().split()
                if children:
                    return int(children[0])
            time.sleep(0.05)
        raise RuntimeError("no systemd inside the container")

    def run(self, *command, check=True, timeout=60):
        result = subprocess.run(["nsenter", "-t", str(self.leader), "-a", *command],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def show(self, unit, *properties):
        out = self.run("systemctl", "show", unit, *[f"-p{p}" for p in properties]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *matches):
        return journal_entries(self.run("journalctl", "--no-pager", "-o", "json", *matches, check=False).stdout)

    def wait(self, predicate, what, timeout=30):
        return wait_until(predicate, what, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.run("systemctl", "poweroff", check=False)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # What nspawn leaves behind on a host whose PID 1 is not systemd. The payload and
        # supervisor cgroups stay: the next container attaches to them.
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.name}", ignore_errors=True)
        try:
            os.rmdir("/sys/fs/cgroup/systemd/payload/init.scope")
        except OSError:
            pass
