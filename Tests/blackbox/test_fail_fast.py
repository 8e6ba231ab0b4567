"""RFC 6455 §7.1.7, tried as a peer would: after a protocol violation vigild sends its close
frame, closes TCP and records at once (1002, 1007, and 1009 for a frame or a message over its
limit). It does not wait for an answering close (which this peer
never sends), so the record is in /closes within 100 ms, not after the 5 s close timeout."""

import time

import pytest

from wsraw import RawPeer

def nothing(peer):
    pass


def a_full_message_in_fragments(peer):
    """max_message (1 MiB by default) in sixteen unfinished fragments of max_frame (64 KiB):
    still allowed. The next fragment is the one over the limit."""
    peer.send_frame(0x2, bytes(65536), fin=False)
    for _ in range(15):
        peer.send_frame(0x0, bytes(65536), fin=False)


# client: (what is sent first, untimed; the violation, timed; code, cause, reason)
VIOLATIONS = {
    "unmasked": (nothing, lambda p: p.send_frame(0x1, b"x", mask=False), 1002, "protocol_error",
                 "unmasked client frame"),
    "reserved_bits": (nothing, lambda p: p.send_frame(0x2, b"x", rsv=4), 1002, "protocol_error",
                      "reserved bits set without a negotiated extension"),
    "unknown_opcode": (nothing, lambda p: p.send_frame(0xB, b""), 1002, "protocol_error", "unknown opcode 0xB"),
    "invalid_utf8": (nothing, lambda p: p.send_frame(0x1, b"caf\xc3"), 1007, "invalid_utf8",
                     "text message is not valid UTF-8"),
    # A header announcing a frame over max_frame: failed from the header, before any payload.
    "frame_too_big": (nothing, lambda p: p.send_frame(0x2, b"", length_override=65537), 1009, "message_too_big",
                      "frame exceeds the size limit"),
    # One byte past max_message, in a fragment that is itself small.
    "message_too_big": (a_full_message_in_fragments, lambda p: p.send_frame(0x0, b"x"), 1009, "message_too_big",
                        "message exceeds 1048576 bytes"),
}


@pytest.mark.parametrize("client", list(VIOLATIONS))
def test_a_violation_is_recorded_at_once_while_the_peer_stays_silent(vigild, client):
    prepare, send, code, cause, reason = VIOLATIONS[client]
    daemon = vigild()  # the defaults: close_timeout 5 s
    peer = RawPeer(daemon.port, f"/ws?client={client}")
    prepare(peer)
    sent = time.monotonic()
    send(peer)
    record = None
    while time.monotonic() - sent < 2:
        found = daemon.closes(f"?client={client}")["closes"]
        if found:
            record = found[0]
            break
    seen = time.monotonic() - sent
    print(f"{client}: record in /closes {seen * 1000:.1f} ms after the violation was sent")
    assert record is not None
    assert (record["kind"], record["code"], record["cause"], record["initiator"], record["clean"], record["reason"]) \
        == ("error", code, cause, "vigild", False, reason)
    assert seen < 0.100, f"recorded {seen * 1000:.0f} ms after the violation"
    # The peer got the close frame, then the end of the stream, without answering anything.
    assert peer.read_until_close() == (code, reason)
    assert peer.expect_eof(timeout=0.5)
