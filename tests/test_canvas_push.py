"""`dlgrade canvas push` against a fake Canvas API on 127.0.0.1 (tests/fake_canvas.py): what
is posted, only what changed, read-back, rate limits, errors, and a token never shown."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("canvasapi")

from dlgrade import canvas_push, cli  # noqa: E402
from dlgrade.canvas_push import CanvasPushError, push  # noqa: E402
from dlgrade.gradebook import write_record  # noqa: E402
from tests.fake_canvas import TOKEN, FakeCanvas, student_record, synthetic_class  # noqa: E402

USERS = list(range(1001, 1009))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # a proxy from the environment would never reach 127.0.0.1
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    synthetic_class(out, USERS)
    return out


@pytest.fixture
def canvas():
    with FakeCanvas(USERS) as fake:
        yield fake


def run(results, fake, sleeps=None, **options):
    options.setdefault("token", TOKEN)
    return push(
        results,
        url=fake.url,
        course=str(fake.course),
        assignment=str(fake.assignment),
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **options,
    )


def cli_push(results, fake, capsys, *extra, course=None, assignment=None):
    code = cli.main(
        [
            "canvas",
            "push",
            str(results),
            "--url",
            fake.url,
            "--course",
            str(course or fake.course),
            "--assignment",
            str(assignment or fake.assignment),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_first_push_posts_the_six_fully_graded_mapped_students(results, canvas):
    result = run(results, canvas)
    puts = canvas.puts()
    assert len(puts) == 6
    assert {p.path.rsplit("/", 1)[1] for p in puts} == {str(u) for u in USERS[:6]}
    # s1 lost nothing, s4 lost 3 of 20 points: the assignment is worth 20, no scaling
    grades = {p.path.rsplit("/", 1)[1]: p.form["submission[posted_grade]"] for p in puts}
    assert grades["1001"] == "20" and grades["1004"] == "17"
    assert canvas.submissions[1004]["entered_score"] == 17.0
    assert {h.student for h in result.plan.unmapped} == {"s7"}
    assert {h.student for h in result.plan.held} == {"s8"}
    assert "incomplete" in result.plan.held[0].why
    assert result.ok and len(result.pushed) == 6 and not result.mismatches
    # read back: the submissions are listed again after the writes
    kinds = [r.method for r in canvas.log if "/submissions" in r.path]
    assert kinds == ["GET"] * 3 + ["PUT"] * 6 + ["GET"] * 3


def test_the_comment_gives_each_activity_and_the_feedback_page(results, canvas):
    run(results, canvas)
    comment = canvas.submissions[1004]["comments"][0]
    assert "17/20 points" in comment
    assert "Activity 1.01: 8/8" in comment and "Activity 2.01: 9/12" in comment
    assert "feedback/s4.html" in comment


def test_a_feedback_url_template_replaces_the_file_name(results, canvas):
    run(results, canvas, feedback_url="https://lms.example.edu/fb/{stem}.html")
    assert "https://lms.example.edu/fb/s2.html" in canvas.submissions[1002]["comments"][0]


def test_a_second_push_after_one_regrade_posts_exactly_that_student(results, canvas):
    run(results, canvas)
    write_record(results, student_record("s3", lost=0.5, lms_id="1003"))
    before = len(canvas.log)
    result = run(results, canvas)
    puts = [r for r in canvas.log[before:] if r.method == "PUT"]
    assert [p.path.rsplit("/", 1)[1] for p in puts] == ["1003"]
    assert puts[0].form["submission[posted_grade]"] == "19.5"
    assert len(result.plan.unchanged) == 5
    assert result.plan.changes[0].current == "18" and result.plan.changes[0].new == "19.5"


def test_a_dry_run_writes_nothing_and_shows_current_and_new(results, canvas, capsys, monkeypatch):
    run(results, canvas)
    write_record(results, student_record("s2", lost=4.0, lms_id="1002"))
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    before = len(canvas.log)
    code, out, _ = cli_push(results, canvas, capsys, "--dry-run")
    assert code == 0
    assert not [r for r in canvas.log[before:] if r.method == "PUT"]
    row = next(line for line in out.splitlines() if line.startswith("s2 "))
    assert row.split() == ["s2", "1002", "19", "16"]
    assert "dry run: nothing was written" in out
    assert "s8: incomplete" in out and "s7: no Canvas user id" in out


def test_a_429_is_waited_out_as_retry_after_says(results, canvas):
    canvas.fault("PUT", r"/submissions/1002$", 429, times=2, Retry_After="7")
    sleeps = []
    result = run(results, canvas, sleeps)
    assert sleeps == [7.0, 7.0]
    statuses = [r.status for r in canvas.log if r.path.endswith("/submissions/1002")]
    assert statuses == [429, 429, 200]
    assert result.ok and canvas.submissions[1002]["entered_score"] == 19.0


def test_canvas_s_older_403_rate_limit_is_waited_out_too(results, canvas):
    canvas.fault("GET", r"/courses/101$", 403, message="403 Forbidden (Rate Limit Exceeded)")
    sleeps = []
    result = run(results, canvas, sleeps)
    assert sleeps == [1.0] and result.ok


def test_a_plain_403_is_an_error_naming_the_course(results, canvas):
    canvas.fault("GET", r"/assignments/7$", 403, message="user not authorized")
    with pytest.raises(CanvasPushError, match="403 Forbidden.*teacher or TA of course 101"):
        run(results, canvas)
    assert not canvas.puts()


def test_a_503_is_retried_with_a_bounded_backoff(results, canvas):
    canvas.fault("GET", r"/assignments/7$", 503, times=2)
    sleeps = []
    result = run(results, canvas, sleeps)
    assert sleeps == [1.0, 2.0]
    assert result.ok and len(result.pushed) == 6


def test_a_5xx_that_never_ends_is_an_error_not_a_hang(results, canvas, capsys, monkeypatch):
    canvas.fault("GET", r"/courses/101$", 502, times=100)
    monkeypatch.setattr(canvas_push.time, "sleep", lambda s: None)
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    code, out, err = cli_push(results, canvas, capsys)
    assert code == 1
    assert "kept answering 502" in err and f"{canvas_push.MAX_ATTEMPTS} tries" in err
    assert sum(r.status == 502 for r in canvas.log) == canvas_push.MAX_ATTEMPTS


def test_a_401_names_the_course_and_the_token_variable(results, canvas, capsys, monkeypatch):
    monkeypatch.setenv("CANVAS_TOKEN", "not-the-right-token-xyz")
    code, out, err = cli_push(results, canvas, capsys)
    assert code == 1
    assert "course 101" in err and "401" in err and "CANVAS_TOKEN" in err
    assert "Traceback" not in err and "not-the-right-token-xyz" not in out + err


def test_a_404_names_the_course_not_found(results, canvas, capsys, monkeypatch):
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    code, out, err = cli_push(results, canvas, capsys, course=999)
    assert code == 1
    assert "course 999 not found" in err and "Traceback" not in err


def test_a_404_names_the_assignment_not_found(results, canvas, capsys, monkeypatch):
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    code, out, err = cli_push(results, canvas, capsys, assignment=55)
    assert code == 1
    assert "assignment 55 of course 101 not found" in err
    assert not canvas.puts()


def test_submissions_are_read_over_three_pages(results, canvas):
    result = run(results, canvas)
    first_read = [r.path for r in canvas.log if "/submissions" in r.path and r.method == "GET"][:3]
    assert len(first_read) == 3 and "page=3" in first_read[2]
    # the last page's students (1007, 1008) were seen: s8 is held for its status, not unmapped
    assert {h.student for h in result.plan.held} == {"s8"}


def test_the_token_never_appears_in_output_or_logs(results, canvas, capsys, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CANVAS_TOKEN", TOKEN)
    seen = []
    code, out, err = cli_push(results, canvas, capsys)  # a push
    seen.append(out + err)
    assert code == 0 and len(canvas.puts()) == 6
    canvas.fault("GET", r"/assignments/7$", 401)  # echoes the Authorization header back
    code, out, err = cli_push(results, canvas, capsys)
    seen.append(out + err)
    assert code == 1 and "401" in err
    code, out, err = cli_push(results, canvas, capsys, course=999)
    seen.append(out + err)
    with FakeCanvas([]) as gone:
        url = gone.url
    code = cli.main(["canvas", "push", str(results), "--url", url, "--course", "1",
                     "--assignment", "2"])
    captured = capsys.readouterr()
    seen.append(captured.out + captured.err)
    assert code == 1 and "cannot reach Canvas" in captured.err
    assert all(TOKEN not in text for text in seen)
    assert TOKEN not in caplog.text
    assert "Bearer" not in "".join(seen)


def test_a_missing_token_is_a_usage_error_before_any_request(results, canvas, capsys,
                                                              monkeypatch):
    monkeypatch.delenv("CANVAS_TOKEN", raising=False)
    code, out, err = cli_push(results, canvas, capsys)
    assert code == 2 and "set CANVAS_TOKEN" in err and not canvas.log


def test_a_percent_assignment_gets_a_percent_scaled_from_our_points(results):
    with FakeCanvas(USERS, grading_type="percent", points_possible=50) as fake:
        result = run(results, fake)
        grades = {p.path.rsplit("/", 1)[1]: p.form["submission[posted_grade]"] for p in fake.puts()}
        assert grades["1004"] == "85%"  # 17 of 20
        assert fake.submissions[1004]["entered_score"] == pytest.approx(42.5)
        assert result.ok and not result.mismatches
        before = len(fake.log)
        assert not run(results, fake).plan.changes  # equal in Canvas: nothing again
        assert not [r for r in fake.log[before:] if r.method == "PUT"]


def test_points_possible_unlike_ours_are_scaled_and_said(results, capsys):
    with FakeCanvas(USERS, points_possible=100) as fake:
        result = run(results, fake)
        canvas_push.report(result)
        grades = {p.path.rsplit("/", 1)[1]: p.form["submission[posted_grade]"] for p in fake.puts()}
    assert grades["1004"] == "85"
    out = capsys.readouterr().out
    assert "scaled: dlgrade's maximum is 20 points" in out and "100 points possible" in out
    assert "scaled to 85/100 in Canvas" in fake.submissions[1004]["comments"][0]


def test_a_grader_fault_holds_the_student_back(results, canvas):
    record = student_record("s5", lost=0, lms_id="1005")
    faulty = record.checks[0].__class__(**{**record.checks[0].__dict__, "points": 0.0,
                                            "outcome": "error", "reason": "harness_error"})
    write_record(results, record.__class__(**{**record.__dict__,
                                              "checks": (faulty, *record.checks[1:])}))
    result = run(results, canvas)
    assert "1005" not in {p.path.rsplit("/", 1)[1] for p in canvas.puts()}
    held = {h.student: h.why for h in result.plan.held}
    assert "harness_error" in held["s5"] and "regrade" in held["s5"]


def test_a_roster_maps_a_student_without_lms_id(results, canvas, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,canvas_id\ns7,1007\n")
    result = run(results, canvas, roster=roster)
    assert "1007" in {p.path.rsplit("/", 1)[1] for p in canvas.puts()}
    assert not result.plan.unmapped


def test_a_read_back_that_differs_is_reported(results, canvas, monkeypatch):
    original = canvas._answer

    def lossy(method, path, query, form, auth):
        if method == "PUT" and path.endswith("/1003"):
            form = {**form, "submission[posted_grade]": "1"}  # Canvas keeps another grade
        return original(method, path, query, form, auth)

    monkeypatch.setattr(canvas, "_answer", lossy)
    result = run(results, canvas)
    assert not result.ok
    assert [(m.student, m.why) for m in result.mismatches] == [
        ("s3", "posted 18, Canvas holds 1")
    ]


def test_a_results_folder_without_records_is_refused(tmp_path, canvas):
    with pytest.raises(CanvasPushError, match="no student records"):
        run(tmp_path, canvas)
    assert not canvas.log


def test_without_canvasapi_the_error_says_what_to_install(results, canvas, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_canvasapi(name, *args, **kwargs):
        if name == "canvasapi" or name.startswith("canvasapi."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_canvasapi)
    with pytest.raises(CanvasPushError, match=r"pip install 'dlgrade\[canvas\]'"):
        run(results, canvas)


def test_a_late_penalty_applied_by_canvas_is_not_a_change(results, canvas):
    run(results, canvas)
    canvas.submissions[1002]["score"] = 17.1  # Canvas's late policy took 10% off the 19
    before = len(canvas.log)
    result = run(results, canvas)
    assert not [r for r in canvas.log[before:] if r.method == "PUT"]
    assert "s2" in {c.student for c in result.plan.unchanged}
