"""The fake Canvas server's request log for a class of 8: a first `dlgrade canvas push`, then
a second push after one student is regraded (issue 27's figure).

    .venv/bin/python benchmarks/canvas_push_log.py

The class is tests/fake_canvas.py's synthetic one (s1..s8, 20 points each; s7 has no
lms_id, s8's run is INCOMPLETE); the server pages submissions 3 at a time.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlgrade import cli  # noqa: E402
from dlgrade.gradebook import write_record  # noqa: E402
from tests.fake_canvas import TOKEN, FakeCanvas, student_record, synthetic_class  # noqa: E402


def push(fake: FakeCanvas, results: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(["canvas", "push", str(results), "--url", fake.url,
                         "--course", str(fake.course), "--assignment", str(fake.assignment)])
    return code, out.getvalue()


def main() -> int:
    os.environ["CANVAS_TOKEN"] = TOKEN
    os.environ["NO_PROXY"] = "127.0.0.1"
    users = list(range(1001, 1009))
    with tempfile.TemporaryDirectory() as tmp, FakeCanvas(users) as fake:
        results = Path(tmp) / "results"
        synthetic_class(results, users)
        for title, regrade in (("first push", False), ("second push, after s3 is regraded", True)):
            if regrade:
                write_record(results, student_record("s3", lost=0.5, lms_id="1003"))
            start = len(fake.log)
            code, output = push(fake, results)
            requests = fake.log[start:]
            puts = sum(r.method == "PUT" for r in requests)
            print(f"== {title}: exit {code}, {len(requests)} requests, {puts} PUT")
            for request in requests:
                print("  " + request.line().replace(fake.url, ""))
            print("  -- dlgrade's output --")
            for line in output.splitlines():
                print("  | " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
