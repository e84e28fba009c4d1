"""Hostile on purpose: its output and its exception messages try to drive the grader's
terminal — clear the screen, overwrite a line with a fake success, write the clipboard
(OSC 52), reverse the text (a bidi override), colour through an 8-bit CSI."""

import sys

EVIL = (
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\r\u2713 every check passed"  # back to the line's start: a fake success over it
    "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: put "evil" on the clipboard
    "\u202etxt.exe"  # right-to-left override
    "\x9b31m\x1bP+q\x1b\\\x07\x08\x7f"  # 8-bit CSI, a DCS query, BEL, backspace, DEL
)

print(EVIL)
sys.stderr.write(EVIL + "\n")


def loss_fn(x, coefficients=(1.0, -10.0, 25.0)):
    raise ValueError(EVIL)


def solve(coefficients=(1.0, -10.0, 25.0), *, learning_rate=0.01, iterations=10_000, start=0.0):
    print(EVIL)
    return start - learning_rate * iterations
