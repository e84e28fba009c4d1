"""The grader process's peak memory under the worst replies a worker can build, against a
clean reply's, as a table (the figures in docs/security.md, "The trusted side").

Run: python benchmarks/hostile_replies.py [--keras]
Each reply is read in a fresh child process, through the same path the grader takes (the
frame from a pipe, ``recv_message``, then ``Codec.decode`` over the exchange folder); the
child reports its peak resident memory (VmHWM) before and after. ``--keras`` imports Keras
first, as the grader process does, for absolute figures comparable with a real session.
"""

import json
import os
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dlgrade.sandbox import protocol
from dlgrade.sandbox.protocol import Codec, ProtocolError, recv_message

GIB = 2**30


def vm_hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def sparse_npy(path: Path, nbytes: int) -> None:
    """An .npy file of ``nbytes`` of float64 zeros that takes no disk (a hole)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (nbytes // 8,)}
        )
        fh.truncate(fh.tell() + nbytes)


def scenarios(folder: Path) -> dict:
    """name → (reply, what it is); the files it names are made in ``folder``."""
    np.save(folder / "w-clean.npy", np.zeros((100, 28, 28), dtype=np.float32))
    for i in range(3):
        sparse_npy(folder / f"w-cap{i}.npy", protocol.MAX_ARRAY_BYTES)
    sparse_npy(folder / "w-big.npy", protocol.MAX_ARRAY_BYTES)
    sparse_npy(folder / "w-half.npy", protocol.MAX_REPLY_ARRAY_BYTES - protocol.MAX_ARRAY_BYTES)
    # the most Python objects per byte of JSON: 3 bytes ("[],") per empty list, each of
    # which json.loads makes once and Codec.decode once more; the containers budget stops
    # that at MAX_CONTAINERS, so the rest of the frame is 2-letter strings (5 bytes, ~60
    # bytes of objects each)
    lists = protocol.MAX_CONTAINERS - 10
    strings = (protocol.MAX_MESSAGE_BYTES - 3 * lists - 100) // 5
    dense = b'{"ok": true, "value": [' + b"[]," * lists + b'"ab",' * strings + b'[]]}'
    too_many = b'{"ok": true, "value": [' + b"[]," * (protocol.MAX_CONTAINERS + 10) + b'[]]}'
    return {
        "clean": ({"ok": True, "value": [{"__ndarray__": "w-clean.npy"}, 1.5, "text"]},
                  "a typical reply: one 0.3 MB array, a number, a string"),
        "issue 22's attack": (
            {"ok": True, "value": [{"__ndarray__": f"w-cap{i}.npy"} for i in range(3)]},
            "3 sparse .npy files, each declaring exactly the 1 GiB per-array cap",
        ),
        "worst arrays": (
            {"ok": True, "value": [{"__ndarray__": "w-big.npy"}, {"__ndarray__": "w-half.npy"}]},
            "arrays filling the per-reply budget exactly (1.5 GiB)",
        ),
        "worst JSON": (dense, f"16 MiB: {lists:,} empty lists, {strings:,} short strings"),
        "JSON over budget": (too_many, "a frame of more than MAX_CONTAINERS empty lists"),
    }


def measure(folder: Path, reply: dict | bytes) -> tuple[int, int, float, str]:
    """(peak before, peak after, seconds, outcome) in a child process."""
    read_end, write_end = os.pipe()
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_end)
        os.close(result_r)
        before = vm_hwm()
        began = time.monotonic()
        try:
            message = recv_message(read_end, deadline=time.monotonic() + 120)
            value = Codec(folder, side="r").decode(message["value"])
            outcome = f"value ({type(value).__name__})"
        except ProtocolError as exc:
            outcome = f"refused: {str(exc)[:70]}"
        seconds = time.monotonic() - began
        os.write(result_w, json.dumps([before, vm_hwm(), seconds, outcome]).encode())
        os._exit(0)
    os.close(read_end)
    os.close(result_w)
    body = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
    sender = threading.Thread(
        target=lambda: (os.write(write_end, struct.pack("!I", len(body)) + body),
                        os.close(write_end)),
        daemon=True,
    )
    sender.start()
    with os.fdopen(result_r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(data))


def main() -> None:
    if "--keras" in sys.argv:
        import keras  # noqa: F401 - the grader process has it loaded

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = scenarios(folder)
        print(f"grader process baseline (VmHWM): {vm_hwm() / GIB:.2f} GiB")
        columns = f"{'peak before':>12} {'peak after':>11} {'added':>8} {'s':>6}"
        print(f"{'reply':<20} {columns}  outcome")
        for name, (reply, what) in table.items():
            for i in range(3):  # files are consumed when read: make them again
                if not (folder / f"w-cap{i}.npy").exists():
                    sparse_npy(folder / f"w-cap{i}.npy", protocol.MAX_ARRAY_BYTES)
            before, after, seconds, outcome = measure(folder, reply)
            print(
                f"{name:<20} {before / GIB:>10.2f} G {after / GIB:>9.2f} G "
                f"{(after - before) / GIB:>6.2f} G {seconds:>6.1f}  {outcome}   [{what}]"
            )


if __name__ == "__main__":
    main()
