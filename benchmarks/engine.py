"""Engine timings: worker round trips and `dlgrade check` on the reference, as a table.

Run: DLGRADE_DATA_DIR=../shared/data python benchmarks/engine.py
Every figure comes from this one run (the machines are shared and noisy; compare ratios).
"""

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlgrade.sandbox import WorkerSession

ROOT = Path(__file__).resolve().parent.parent


def timed(function, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def round_trips() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sub"
        folder.mkdir()
        (folder / "echo.py").write_text("def echo(value):\n    return value\n")
        session = WorkerSession(folder)
        try:
            began = time.perf_counter()
            session.start()
            spawn = time.perf_counter() - began
            session.call("echo", "echo", (0,))  # import the module once
            small = timed(lambda: session.call("echo", "echo", ({"x": 1.5, "y": [1, 2]},)), 200)
            images = np.random.default_rng(0).integers(0, 256, (60_000, 28, 28), dtype=np.uint8)
            large = timed(lambda: session.call("echo", "echo", (images,)), 5)
            path = Path(tmp) / "direct.npy"

            def direct():  # what any file-based exchange costs: write once, read once
                np.save(path, images)
                np.load(path)

            baseline = timed(direct, 5)
        finally:
            session.close()
    print("worker round trip (call + data exchange, there and back)")
    print(f"  spawn a worker (python, no TensorFlow)      {spawn * 1000:8.1f} ms")
    print(f"  small value (dict of 2 items), median of 200 {small * 1000:8.2f} ms")
    print(f"  60000x28x28 uint8 (47 MB), median of 5       {large * 1000:8.1f} ms")
    print(f"    for scale: np.save + np.load once, in-process {baseline * 1000:6.1f} ms")


def import_keras() -> float:
    return timed(
        lambda: subprocess.run(
            [sys.executable, "-c", "import keras"], check=True, capture_output=True
        ),
        3,
    )


def check_run(tier: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "grade.json"
        began = time.perf_counter()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "dlgrade.cli",
                "check",
                str(ROOT / "reference"),
                "--activity",
                "1.01",
                "--activity",
                "2.01",
                "--tier",
                tier,
                "--grade-json",
                str(out),
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - began
        grade = json.loads(out.read_text())
    worker = re.search(r"preload ([\d.]+) s, of which ([\d.]+) s held up", run.stdout)
    return {
        "tier": tier,
        "exit": run.returncode,
        "score": f"{grade['score']:g}/{grade['max_score']:g}",
        "wall": wall,
        "checks": sum(c["duration_s"] for c in grade["checks"]),
        "preload": float(worker.group(1)),
        "waited": float(worker.group(2)),
    }


def main() -> None:
    round_trips()
    keras_import = import_keras()
    print(f"\n`import keras` in a fresh Python, median of 3: {keras_import:.1f} s\n")
    print("dlgrade check reference/ --activity 1.01 --activity 2.01")
    print("  tier      exit score   wall    in checks  worker TF preload  (held up a check)")
    for tier in ("quick", "standard"):
        r = check_run(tier)
        net = r["checks"] - r["waited"]
        print(
            f"  {r['tier']:9} {r['exit']:4} {r['score']:7} {r['wall']:5.1f} s  {r['checks']:5.1f} s"
            f"    {r['preload']:5.1f} s            ({r['waited']:.1f} s; checks alone {net:.1f} s)"
        )


if __name__ == "__main__":
    main()
