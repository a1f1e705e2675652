"""Byte-level mutations of real sample files, shared by the format fuzz tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: one to three edits: (operation, relative position, bytes)
EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "delete"]), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
    min_size=1,
    max_size=3,
)


def mutate(data: bytes, edits: list) -> bytes:
    """Apply the edits in order: flip a byte, cut the tail, insert or delete a few bytes."""
    out = bytearray(data)
    for op, where, payload in edits:
        if not out:
            break
        i = int(where * (len(out) - 1))
        if op == "flip":
            out[i] ^= payload[0] or 1
        elif op == "cut":
            del out[i:]
        elif op == "insert":
            out[i:i] = payload
        else:
            del out[i : i + len(payload)]
    return bytes(out)
