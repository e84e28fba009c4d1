"""A fake Canvas API on 127.0.0.1 for `dlgrade canvas push` (tests/test_canvas_push.py and
benchmarks/canvas_push_log.py), and a synthetic class's gradebook to push.

It serves the four endpoints a push uses, as Canvas documents them
(https://canvas.instructure.com/doc/api/submissions.html and .../assignments.html):

- ``GET /api/v1/courses/:course``
- ``GET /api/v1/courses/:course/assignments/:assignment``
- ``GET /api/v1/courses/:course/assignments/:assignment/submissions``, ``page_size`` per page
  with ``Link: <...>; rel="next"`` headers (Canvas caps ``per_page`` the same way)
- ``PUT /api/v1/courses/:course/assignments/:assignment/submissions/:user_id`` with the form
  fields ``submission[posted_grade]`` (points, or ``"87.5%"``) and ``comment[text_comment]``

Every request is recorded in ``log``; ``faults`` injects answers (429 with Retry-After,
503, 401, 404) for the next requests whose path matches. A 401 body echoes the
Authorization header, so that a test sees whether the client ever prints it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from dlgrade.gradebook import GRADED, INCOMPLETE, StudentRecord, write_record
from dlgrade.rubric import CheckResult

TOKEN = "fake-canvas-token-7~Q3vX9sLzP0aB1cD2eF3g"


@dataclass
class Fault:
    method: str
    path: str  # a regex matched against the request's path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    message: str = ""


@dataclass
class Logged:
    method: str
    path: str
    status: int
    form: dict[str, str]

    def line(self) -> str:
        grade = self.form.get("submission[posted_grade]")
        return f"{self.method:4} {self.path} -> {self.status}" + (
            f"  posted_grade={grade}" if grade is not None else ""
        )


class FakeCanvas:
    """One course with one assignment; ``submissions``: user id → its submission dict."""

    def __init__(
        self,
        users: list[int],
        *,
        course: int = 101,
        assignment: int = 7,
        points_possible: float = 20.0,
        grading_type: str = "points",
        page_size: int = 3,
        token: str = TOKEN,
    ) -> None:
        self.course, self.assignment, self.token = course, assignment, token
        self.points_possible, self.grading_type, self.page_size = (
            points_possible,
            grading_type,
            page_size,
        )
        self.submissions = {
            u: {
                "id": 5000 + u,
                "user_id": u,
                "assignment_id": assignment,
                "score": None,
                "entered_score": None,
                "grade": None,
                "excused": False,
                "workflow_state": "submitted",
                "comments": [],
            }
            for u in users
        }
        self.log: list[Logged] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeCanvas:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def puts(self) -> list[Logged]:
        return [r for r in self.log if r.method == "PUT"]

    def fault(
        self, method: str, path: str, status: int, times: int = 1, message: str = "", **headers
    ) -> None:
        """Answer ``status`` to the next ``times`` requests matching; ``Retry_After="7"``
        sends the header ``Retry-After: 7``."""
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        self.faults.append(Fault(method, path, status, headers, times, message))

    # -- the API ------------------------------------------------------------------------

    def _answer(self, method: str, path: str, query: dict, form: dict, auth: str):
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.path, path):
                    fault.times -= 1
                    body = {"errors": [{"message": fault.message or f"injected {fault.status}"}]}
                    if fault.status == 401:
                        body = {"errors": [{"message": f"Invalid access token: {auth}"}]}
                    return fault.status, body, fault.headers
            if auth != f"Bearer {self.token}":
                return 401, {"errors": [{"message": f"Invalid access token: {auth}"}]}, {}
            base = f"/api/v1/courses/{self.course}"
            if method == "GET" and path == base:
                return 200, {"id": self.course, "name": "Deep Learning Workshop"}, {}
            if not path.startswith(base + "/"):
                return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}
            assignment = f"{base}/assignments/{self.assignment}"
            if method == "GET" and path == assignment:
                return 200, {
                    "id": self.assignment,
                    "course_id": self.course,
                    "name": "Activities (dlgrade)",
                    "points_possible": self.points_possible,
                    "grading_type": self.grading_type,
                }, {}
            if method == "GET" and path == f"{assignment}/submissions":
                page = int(query.get("page", ["1"])[0])
                users = sorted(self.submissions)
                chunk = users[(page - 1) * self.page_size : page * self.page_size]
                headers = {}
                if page * self.page_size < len(users):
                    headers["Link"] = (
                        f'<{self.url}{path}?page={page + 1}&per_page={self.page_size}>; '
                        'rel="next"'
                    )
                return 200, [self._public(self.submissions[u]) for u in chunk], headers
            match = re.fullmatch(rf"{assignment}/submissions/(\d+)", path)
            if method == "PUT" and match and int(match[1]) in self.submissions:
                sub = self.submissions[int(match[1])]
                grade = form.get("submission[posted_grade]")
                if grade is not None:
                    if grade.endswith("%"):
                        score = self.points_possible * float(grade[:-1]) / 100
                    else:
                        score = float(grade)
                    sub.update(score=score, entered_score=score, grade=grade,
                               workflow_state="graded")
                if form.get("comment[text_comment]"):
                    sub["comments"].append(form["comment[text_comment]"])
                return 200, self._public(sub), {}
            return 404, {"errors": [{"message": "The specified resource does not exist."}]}, {}

    @staticmethod
    def _public(sub: dict) -> dict:
        return {k: v for k, v in sub.items() if k != "comments"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
                status, payload, headers = fake._answer(
                    method, parts.path, parse_qs(parts.query), form,
                    self.headers.get("Authorization", ""),
                )
                fake.log.append(Logged(method, parts.path + (f"?{parts.query}" if
                                       parts.query else ""), status, form))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's names
                self._serve("GET")

            def do_PUT(self):  # noqa: N802
                self._serve("PUT")

            def log_message(self, *args):  # quiet
                pass

        return Handler


# -- a synthetic class ---------------------------------------------------------------------

#: (activity, points per check) of each synthetic record: 20 points in all
LAYOUT = (("1.01", (4.0, 4.0)), ("2.01", (6.0, 6.0)))


def check(activity: str, n: int, points: float, max_points: float) -> CheckResult:
    return CheckResult(
        id=f"activity_{activity.replace('.', '_')}::check_{n}",
        activity=activity,
        title=f"Check {n}",
        tier="quick",
        visibility="public",
        points=points,
        max_points=max_points,
        outcome="pass" if points == max_points else "fail",
        reason="",
        feedback="",
        duration_s=0.1,
        stdout="",
    )


def student_record(student: str, lost: float, **fields) -> StudentRecord:
    """A record of 20 points possible, ``lost`` of them lost in its last check."""
    checks = []
    for activity, maxima in LAYOUT:
        for n, maximum in enumerate(maxima):
            checks.append(check(activity, n, maximum, maximum))
    last = checks[-1]
    checks[-1] = check(last.activity, len(LAYOUT[-1][1]) - 1, last.max_points - lost,
                       last.max_points)
    values = dict(
        folder=f"/class/{student}",
        status=GRADED,
        key=f"key-{student}",
        tier="quick",
        rubric_version="test",
        seed=0,
        activities=tuple(a for a, _ in LAYOUT),
        checks=tuple(checks),
    )
    values.update(fields)
    return StudentRecord(student=student, **values)


def synthetic_class(out, users=range(1001, 1009)) -> list[StudentRecord]:
    """Eight students s1..s8 written to ``out/students/``: s7 has no lms_id, s8's run is
    INCOMPLETE; the others lost 0..5 points."""
    records = []
    for n, user in enumerate(users, start=1):
        fields = {"lms_id": str(user)}
        if n == 7:
            fields["lms_id"] = ""
        if n == 8:
            fields.update(status=INCOMPLETE, note="the grader was interrupted")
        record = student_record(f"s{n}", lost=float(n - 1) if n < 7 else 1.0, **fields)
        write_record(out, record)
        records.append(record)
    return records
