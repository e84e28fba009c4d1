"""Attack: log the hidden inputs where a later public check can print them (issue 23, item 4).

Every call of solve() appends its arguments to files in HOME, the working folder and
/dev/shm, and to a list in the worker's memory; it prints them on stdout and stderr, and a
thread prints them again a second later (in the output window of whatever check comes
next). solve() answers exactly, except for the book's k = 2.5 style of quadratic whose
constant term is not a whole number: there it returns the log itself, so that a hidden
check's failure message would quote it. activity_2_01.py is the printer.
Expected: no hidden input appears in any student-facing file or on the console.
"""

import os
import sys
import threading
from pathlib import Path

LOG_NAME = ".seen-arguments"
SEEN: list[str] = []


def log_paths() -> list[Path]:
    return [
        Path(os.environ.get("HOME", ".")) / LOG_NAME,
        Path.cwd() / LOG_NAME,
        Path("/dev/shm") / LOG_NAME,
    ]


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    a, b, c = coefficients
    return abs(a * x**2 + b * x + c)


def _late_print(text: str) -> None:
    threading.Timer(1.0, lambda: print("late: " + text, flush=True)).start()


def solve(coefficients=(1.0, -10.0, 25.0), learning_rate=0.01, iterations=10000, start=0.0):
    a, b, c = coefficients
    line = f"solve({list(coefficients)!r}, {dict(iterations=iterations, start=start)!r})"
    SEEN.append(line)
    for path in log_paths():
        try:
            with open(path, "a") as handle:
                handle.write(line + "\n")
        except OSError:
            pass
    print(line, flush=True)
    print(line, file=sys.stderr, flush=True)
    _late_print(line)
    if float(c) != int(c):
        return " | ".join(SEEN)  # a failure message that quotes what solve() returned
    return -b / (2 * a)
