"""Raw-socket WebSocket peers for traffic no well-behaved client library would send."""

import base64
import os
import socket
import struct

KEY = base64.b64encode(b"vigil-test-key!!").decode()


def handshake_request(path="/ws", host="127.0.0.1", key=KEY, version="13", method="GET", extra="", connection="Upgrade"):
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: {connection}\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n").encode()


def read_http_response(sock):
    """Reads one HTTP response head (and its body when Content-Length says so)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest


class FrameStream:
    """Frames read off a bare socket (`self.sock`, with what arrived early in `self.buffer`)."""

    def _need(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk

    def read_masked_frame(self):
        """(opcode, payload unmasked, whether it was masked) of the next frame."""
        self._need(2)
        masked, length, offset = bool(self.buffer[1] & 0x80), self.buffer[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            self._need(2 + size)
            length, offset = int.from_bytes(self.buffer[2:2 + size], "big"), 2 + size
        key = b""
        if masked:
            self._need(offset + 4)
            key, offset = self.buffer[offset:offset + 4], offset + 4
        self._need(offset + length)
        payload = self.buffer[offset:offset + length]
        if masked:
            payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
        opcode, self.buffer = self.buffer[0] & 0x0F, self.buffer[offset + length:]
        return opcode, payload, masked


class RawPeer(FrameStream):
    """A WebSocket client on a bare socket: frames are built by hand, masking optional."""

    def __init__(self, port, path="/ws", host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.sendall(handshake_request(path))
        status, headers, rest = read_http_response(self.sock)
        assert status == 101, (status, headers, rest)
        self.buffer = rest

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, length_override=None):
        self.sock.sendall(frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length_override=length_override))

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """(opcode, payload) of the next frame from the server."""
        opcode, payload, masked = self.read_masked_frame()
        assert not masked, "a server's frames are never masked (RFC 6455 §5.1)"
        return opcode, payload

    def read_until_close(self):
        """Frames until a close frame; returns (code, reason) of the close, skipping pings."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                if len(payload) >= 2:
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")
                return None, ""

    def answer_close(self, code=None):
        self.send_frame(0x8, b"" if code is None else struct.pack("!H", code))

    def expect_eof(self, timeout=5):
        """True when the server closes TCP (recv returns b'' or the connection resets)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def fin(self):
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        self.sock.close()


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length_override=None):
    header = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload) if length_override is None else length_override
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header += bytes([mask_bit | length])
    elif length < 65536:
        header += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        header += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
