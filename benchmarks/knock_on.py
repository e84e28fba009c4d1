"""Knock-on failures: which checks each mutant fails beyond the ones it names.

A mutant (tests/mutants/) is the reference with one deliberate mistake and names the checks
that must catch it (``# kills:``), plus any knock-on failure that cannot be avoided, with
its reason (``# knock-on: check — why``). Here every mutant is graded on *all* checks of its
activity, public and hidden, at one tier (standard by default, which includes quick), and
the table lists every other check it failed: a knock-on is one mistake costing points twice.

    DLGRADE_DATA_DIR=../shared/data python benchmarks/knock_on.py [--tier standard]
        [--jobs 2] [--activity 2.01 ...]

Prints one line per mutant and the totals: mutants, killed (every named check failed),
knock-on failures listed in the mutant files, and knock-on failures not listed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import (  # noqa: E402
    MUTANT_FILES,
    Mutant,
    rubric_files,  # noqa: E402
)

#: outcomes that prove nothing about the check (no data, no GPU here)
UNGRADED = ("data_missing", "runner")


def grade(mutant: Mutant, tier: str, root: Path) -> dict:
    folder = mutant.write(root / mutant.name)
    out = root / f"{mutant.name}.json"
    began = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *map(str, rubric_files(mutant.activity)),
            "--submission",
            str(folder),
            "--tier",
            tier,
            "--grade-json",
            str(out),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    seconds = time.monotonic() - began
    if not out.exists():
        return {"mutant": mutant, "error": "no grade written", "seconds": seconds}
    checks = json.loads(out.read_text())["checks"]
    failed = {
        c["id"].split("/", 1)[1]: c["reason"]
        for c in checks
        if c["outcome"] != "pass" and c["reason"] not in UNGRADED
    }
    ungraded = {c["id"].split("/", 1)[1] for c in checks if c["reason"] in UNGRADED}
    # a named check of a higher tier than this run (the full tier) was not graded either
    ungraded |= set(mutant.kills) - {c["id"].split("/", 1)[1] for c in checks}
    return {"mutant": mutant, "failed": failed, "ungraded": ungraded, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="standard")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--activity", action="append")
    args = parser.parse_args()
    mutants = [Mutant.parse(p) for p in MUTANT_FILES]
    if args.activity:
        mutants = [m for m in mutants if m.activity in args.activity]
    totals = {"mutants": 0, "killed": 0, "listed": 0, "unlisted": 0, "errors": 0}
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda m: grade(m, args.tier, Path(tmp)), mutants)
        print(f"{'mutant':48} {'s':>5}  killed  knock-on failures")
        for result in results:
            mutant = result["mutant"]
            totals["mutants"] += 1
            if "error" in result:
                totals["errors"] += 1
                print(f"{mutant.name:48} {result['seconds']:5.0f}  ERROR  {result['error']}")
                continue
            failed, ungraded = result["failed"], result["ungraded"]
            named = [k for k in mutant.kills if k not in ungraded]
            killed = all(k in failed for k in named)
            totals["killed"] += killed
            extra = sorted(set(failed) - set(mutant.kills))
            listed = [k for k in extra if k in mutant.knock_ons]
            unlisted = [k for k in extra if k not in mutant.knock_ons]
            totals["listed"] += len(listed)
            totals["unlisted"] += len(unlisted)
            notes = [f"{k} ({failed[k]}, listed)" for k in listed]
            notes += [f"{k} ({failed[k]}) UNLISTED" for k in unlisted]
            print(
                f"{mutant.name:48} {result['seconds']:5.0f}  "
                f"{'yes' if killed else 'NO':6}  {', '.join(notes) or '-'}"
            )
    print(
        f"\n{totals['mutants']} mutants at tier {args.tier} ({args.jobs} jobs, "
        f"{time.monotonic() - began:.0f} s): {totals['killed']} killed; knock-on failures "
        f"{totals['listed']} listed, {totals['unlisted']} unlisted; {totals['errors']} errors"
    )
    return 0 if totals["unlisted"] == 0 and totals["errors"] == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
