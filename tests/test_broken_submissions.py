"""Broken submissions fail their checks cleanly, with the right reason, and the session
always completes: the check after a crash or a hang runs in a fresh worker and passes."""

import pytest

from dlgrade.plugin import NOT_IMPLEMENTED_PREFIX

# loss_fn is broken in each; solve (where present) fakes Adam well enough to pass start.
FAST = ("--no-preload", "--call-timeout", "5", "-k", "loss_fn or start")

CASES = [
    # (folder, loss_fn outcome, reason, words the feedback must contain)
    ("syntax_error", "error", "syntax_error", ["does not compile", "line 4"]),
    ("import_error", "error", "import_error", ["ModuleNotFoundError", "tensorflow_but_misspelled"]),
    ("missing_function", "error", "missing_function", ["has no function loss_fn()"]),
    ("wrong_type", "fail", "check_failed", ["returned a str", "must return a number"]),
    ("raises", "error", "student_exception", ["ZeroDivisionError", "activity_1_01.py"]),
    ("infinite_loop", "timeout", "timeout", ["did not finish within 5 s"]),
    ("exit_at_import", "error", "exit", ["sys.exit(0)", "while being imported"]),
    ("os_exit", "crash", "worker_died", ["exited with code 3"]),
    ("print_flood", "crash", "output_limit", ["printed more than 16 MiB"]),
]
MODULE_LEVEL = {"syntax_error", "import_error", "exit_at_import"}


@pytest.mark.parametrize(("name", "outcome", "reason", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_submission_fails_cleanly_and_the_session_completes(
    grade, broken, name, outcome, reason, words
):
    graded = grade(broken(f"broken/{name}"), ("1.01",), "quick", *FAST)
    loss = graded.check("loss_fn_at_known_points")
    assert (loss["outcome"], loss["reason"]) == (outcome, reason), loss["feedback"]
    for word in words:
        assert word in loss["feedback"]
    assert "dlgrade/sandbox/worker.py" not in loss["feedback"], "harness frames leaked"
    assert loss["points"] == 0
    start = graded.check("start_is_honoured")
    if name in MODULE_LEVEL:
        assert (start["outcome"], start["reason"]) == (outcome, reason)
    else:
        # The worker was restarted (or never died): the next check is graded on its merits.
        assert start["outcome"] == "pass", start["feedback"]
    assert "INTERNAL ERROR" not in graded.run.stdout.str()


def test_student_traceback_shows_the_students_lines_only(grade, broken):
    graded = grade(broken("broken/raises"), ("1.01",), "quick", *FAST)
    feedback = graded.check("loss_fn_at_known_points")["feedback"]
    assert "Traceback (your code" in feedback
    assert 'File "activity_1_01.py", line 9, in loss_fn' in feedback
    assert "line 5, in _denominator" not in feedback  # raised by `/`, not inside the helper
    assert "site-packages" not in feedback and "dlgrade" not in feedback.split("What to fix")[0]


def test_printed_output_is_attached_to_the_check_and_capped(grade, broken):
    graded = grade(broken("broken/print_flood"), ("1.01",), "quick", *FAST)
    stdout = graded.check("loss_fn_at_known_points")["stdout"]
    assert stdout.startswith("x" * 100)
    assert len(stdout) < 20_000
    assert "more bytes of output not shown" in stdout


def test_skeleton_scores_zero_with_not_implemented_feedback(grade, tmp_path):
    from dlgrade.cli import main

    assert main(["new", str(tmp_path / "work")]) == 0
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [
        f"activity_{n}.py"
        for n in ("1_01", "2_01", "3_01", "3_02", "4_01", "4_02", "5_01", "6_01", "7_01")
    ]
    graded = grade(tmp_path / "work", ("1.01", "2.01"), "standard", "--no-preload")
    assert graded.grade["score"] == 0 and graded.grade["max_score"] > 0
    for result in graded.grade["checks"]:
        assert result["outcome"] == "not_implemented", result
        assert result["feedback"].startswith(NOT_IMPLEMENTED_PREFIX)
        assert "is not implemented yet" in result["feedback"]
    assert "Traceback" not in graded.run.stdout.str()
