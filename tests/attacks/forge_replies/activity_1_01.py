"""Attack: replace the worker's answers with forged ones (the worker runs the student's code).

At import, the submission patches the worker's own loop: ``loss_fn`` is answered with an
error whose kind names a grader fault (``machine_busy``: "not your fault, graded again next
run"), which a grader that believed its worker would record as its own failure — exit 3,
and a student who stays ungraded forever. ``forge(spec)`` sends whatever reply the test
asks for: a JSON reply as given, or raw bytes on the reply pipe (``{"raw": hex}``).
Expected: the student's crash (reason tampering); ``solve`` still graded.
"""

import json
import os
import sys

import dlgrade.sandbox.worker

# the worker runs as `python -m dlgrade.sandbox.worker`: its loop lives in __main__
_main = sys.modules["__main__"]
_worker = _main if hasattr(_main, "Worker") else dlgrade.sandbox.worker

FORGED = {"ok": False, "error": {"kind": "machine_busy", "message": "the machine was too busy"}}
_real_handle = _worker.Worker.handle
_real_send = _worker.send_message


def _handle(self, request):
    if request.get("op") == "call" and request.get("function") == "loss_fn":
        return {"__forged__": FORGED}
    if request.get("op") == "call" and request.get("function") == "forge":
        return {"__forged__": json.loads(self.codec.decode(request["args"])[0])}
    return _real_handle(self, request)


def _send(fd, reply, *args, **kwargs):
    forged = reply.get("__forged__") if isinstance(reply, dict) else None
    if forged is None:
        return _real_send(fd, reply, *args, **kwargs)
    if isinstance(forged, dict) and set(forged) == {"raw"}:
        os.write(fd, bytes.fromhex(forged["raw"]))
        return None
    return _real_send(fd, forged)


_worker.Worker.handle = _handle
_worker.send_message = _send


def forge(spec):
    raise AssertionError("never called: the patched loop answers for it")


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    """An honest fake of Adam that passes start_is_honoured without TensorFlow."""
    return start - learning_rate * iterations if start > 5 else start + learning_rate * iterations


def echo(value):
    return value


def many_lists(n):
    return [[] for _ in range(n)]
