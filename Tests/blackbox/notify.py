"""A stand-in for the service manager's notification socket: an AF_UNIX datagram listener that
records every sd_notify(3) message with its arrival time and the sender's pid."""

import os
import socket
import struct
import tempfile
import threading
import time


class NotifyListener:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (monotonic time, pid, {key: value})
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append((time.monotonic(), pid, fields))

    def env(self):
        return {"NOTIFY_SOCKET": self.path}

    def with_key(self, key, value=None):
        return [m for m in list(self.messages) if key in m[2] and (value is None or m[2][key] == value)]

    def wait_for(self, key, value=None, count=1, timeout=10.0, after=0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.with_key(key, value) if m[0] >= after]
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(f"no {key}={value} (x{count}) in {self.messages}")

    def close(self):
        self._stop = True
        self.sock.close()
        self._thread.join(2)
        os.unlink(self.path)
        os.rmdir(self.dir)
