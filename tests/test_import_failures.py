"""An activity whose module cannot be imported is reported once, with the import's own fix
and the checks it cost — in the console, the feedback pages and Gradescope's results — while
the records keep one result per check, with its points."""

from __future__ import annotations

import json
from pathlib import Path

from dlgrade.errors import SubmissionError
from dlgrade.plugin import classify
from dlgrade.reasons import IMPORT_FAILURES
from dlgrade.reports import console, gradescope
from dlgrade.reports.feedback import ImportFailure, arrange, render_html, render_markdown
from dlgrade.rubric import CheckResult, CheckSpec
from tests.helpers import LIGHT, check, dlgrade, record

MISSING = (
    "the submission has no activity_1_01.py (or activity_1_01.ipynb); add it (run `dlgrade "
    "new` for a skeleton)"
)
FIXES = ["What to fix: loss_fn must return abs()", "What to fix: solve must use Adam"]
SECRET = "HIDDEN-INPUT-42"


def missing(check_id: str, points: float = 2, **fields) -> dict:
    return check(check_id, "error", points, reason="missing_module", feedback=MISSING, **fields)


def results(*checks: dict) -> list[CheckResult]:
    return [CheckResult.from_dict(c) for c in checks]


def no_activity_1_01():
    """1.01 missing (three public checks, one hidden), 2.01 graded on its merits."""
    return record(
        "alice",
        [
            missing("1.01/loss_fn_at_known_points"),
            missing("1.01/solve_defaults", 3),
            missing("1.01/start_is_honoured"),
            missing("1.01/other_quadratics", 3, visibility="hidden"),
            check("2.01/model_shape", max_points=3),
            check("2.01/accuracy", "fail", 2, feedback="accuracy 0.5\nWhat to fix: train longer"),
        ],
    )


# ------------------------------------------------------------------------------ grouping


def test_an_activitys_import_failure_groups_every_check_it_cost_in_order():
    arranged = arrange(no_activity_1_01().checks)
    failure, shape, accuracy = arranged
    assert isinstance(failure, ImportFailure)
    assert [c.id for c in failure.checks] == [
        "1.01/loss_fn_at_known_points",
        "1.01/solve_defaults",
        "1.01/start_is_honoured",
        "1.01/other_quadratics",
    ]
    assert (failure.module, failure.label, failure.message) == (
        "activity_1_01",
        "missing module",
        MISSING,
    )
    assert (failure.points, failure.max_points) == (0, 10)
    assert failure.cost() == "This cost 4 checks (10 points):"
    assert (shape.id, accuracy.id) == ("2.01/model_shape", "2.01/accuracy")


def test_checks_with_other_messages_reasons_or_activities_are_not_grouped():
    checks = results(
        missing("1.01/a"),
        check("1.01/b", "error", reason="syntax_error", feedback="x.py does not compile"),
        missing("2.01/c"),
        check("1.01/d", "error", reason="student_exception", feedback="raised\nWhat to fix: d"),
        check("1.01/e"),
    )
    arranged = arrange(checks)
    assert [type(item).__name__ for item in arranged] == [
        "ImportFailure",
        "ImportFailure",
        "ImportFailure",
        "CheckResult",
        "CheckResult",
    ]
    assert [item.reason for item in arranged[:3]] == ["missing_module", "syntax_error"] + [
        "missing_module"
    ]
    assert [item.activity for item in arranged[:3]] == ["1.01", "1.01", "2.01"]


def test_the_reasons_of_an_import_failure_are_the_five_the_worker_reports():
    assert set(IMPORT_FAILURES) == {
        "missing_module",
        "import_error",
        "syntax_error",
        "ambiguous_module",
        "bad_notebook",
    }


def test_a_hidden_check_whose_failure_no_public_check_shows_stays_hidden():
    secret = check(
        "1.01/other_quadratics",
        "error",
        3,
        visibility="hidden",
        reason="import_error",
        feedback=f"importing activity_1_01.py raised ValueError: {SECRET}",
    )
    book = record("bob", [missing("1.01/loss_fn_at_known_points"), secret])
    arranged = arrange(book.checks)
    assert isinstance(arranged[0], ImportFailure) and len(arranged[0].checks) == 1
    assert arranged[1].id == "1.01/other_quadratics"  # a check of its own, not grouped
    pages = [render_markdown(book), render_html(book), json.dumps(gradescope.results(book))]
    pages.append("\n".join(console.arranged_lines(list(book.checks))))
    for page in pages:
        assert SECRET not in page
        assert page.count("the submission has no activity_1_01.py") == 1


def test_a_record_written_before_classify_dropped_the_checks_fix_groups_without_it():
    checks = results(
        *(
            check("1.01/" + name, "error", reason="missing_module", feedback=f"{MISSING}\n{fix}")
            for name, fix in zip(("loss", "solve"), FIXES, strict=True)
        )
    )
    (failure,) = arrange(checks)
    assert failure.message == MISSING and len(failure.checks) == 2
    text = "\n".join(console.arranged_lines(checks))
    assert "What to fix" not in text


# ------------------------------------------------------------------------------- console


def test_the_console_shows_the_import_failure_once_with_its_cost():
    lines = console.arranged_lines([c for c in no_activity_1_01().checks if c.activity == "1.01"])
    text = "\n".join(lines)
    assert text.count(MISSING) == 1
    assert lines[0] == "  ✗ activity_1_01 could not be imported  0/10  [missing module]"
    assert "      This cost 4 checks (10 points):" in lines
    assert "        · Other quadratics (hidden)  0/3" in lines
    assert "        · Solve defaults  0/3" in lines
    assert "What to fix" not in text


class _Writer:
    def __init__(self):
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        self.lines.append(text)


class _Config:
    def __init__(self):
        self.writer = _Writer()

    def get_terminal_writer(self):
        return self.writer


def test_live_lines_hold_an_import_failure_until_its_activity_ends():
    config = _Config()
    progress = console.Progress(config)
    try:
        for result in no_activity_1_01().checks:
            progress.begin(result.activity, result.title, "quick")
            progress.finish(result)
            if result.activity == "1.01":  # nothing yet: the block comes whole
                assert not any("could not be imported" in line for line in config.writer.lines)
        progress.flush()
    finally:
        progress.close()
    lines = config.writer.lines
    text = "\n".join(lines)
    assert text.count(MISSING) == 1 and text.count("could not be imported") == 1
    # the block closes 1.01, before 2.01's title
    assert lines.index("  ✗ activity_1_01 could not be imported  0/10  [missing module]") < (
        next(i for i, line in enumerate(lines) if line.startswith("Activity 2.01"))
    )


# ------------------------------------------------------------------------ feedback pages


def test_the_feedback_pages_show_the_import_failure_once_with_its_cost():
    book = no_activity_1_01()
    markdown, page = render_markdown(book), render_html(book)
    assert markdown.count("**activity\\_1\\_01 could not be imported**") == 1
    assert page.count("<strong>activity_1_01 could not be imported</strong>") == 1
    for text in (markdown, page):
        assert "This cost 4 checks (10 points):" in text
        assert "What to fix" not in text.split("Activity 2.01")[0]
        assert "What to fix: train longer" in text  # other checks keep their own fix
    assert markdown.count("the submission has no activity_1_01.py") == 1
    assert page.count("the submission has no activity_1_01.py") == 1
    assert "  - Solve defaults: 0/3" in markdown
    assert "  - Other quadratics (hidden): 0/3" in markdown
    assert "— 0/10" in markdown and "<span>0/10</span>" in page  # the activity's total


# ---------------------------------------------------------------------------- Gradescope


def test_gradescope_keeps_one_test_per_check_and_puts_the_message_once_on_top():
    book = no_activity_1_01()
    result = gradescope.results(book)
    tests = result["tests"]
    assert [t["number"] for t in tests] == [c.id for c in book.checks]
    assert [(t["score"], t["max_score"]) for t in tests] == [
        (c.points, c.max_points) for c in book.checks
    ]
    assert result["score"] == book.score == 3
    costed = tests[:4]
    pointer = gradescope.IMPORT_COST_OUTPUT.format(
        module="activity_1_01", label="missing module"
    )
    assert all(t["output"] == pointer and t["status"] == "failed" for t in costed)
    assert tests[3]["visibility"] == "after_published"
    assert "What to fix: train longer" in tests[5]["output"]
    assert result["output"].count(MISSING) == 1
    assert "Activity 1.01: activity_1_01 could not be imported (missing module)" in (
        result["output"]
    )
    assert "This cost 4 checks (10 points):" in result["output"]
    assert json.dumps(result).count(MISSING) == 1


# ------------------------------------------------------------------------------ classify


class _Info:
    def __init__(self, value):
        self.value = value


SPEC = CheckSpec(points=2, tier="quick", visibility="public", feedback="loss_fn must use tf.abs")


def test_classify_gives_an_import_failure_without_the_checks_own_fix():
    for reason in IMPORT_FAILURES:
        outcome, got, feedback = classify(_Info(SubmissionError(MISSING, reason=reason)), SPEC)
        assert (outcome, got, feedback) == ("error", reason, MISSING)
    other = SubmissionError("loss_fn() raised ValueError", reason="student_exception")
    assert classify(_Info(other), SPEC)[2].endswith("What to fix: loss_fn must use tf.abs")


# ---------------------------------------------------------------------------- end to end


def test_dlgrade_check_on_a_missing_module_names_it_once(tmp_path: Path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "activity_2_01.py").write_text("X = 1\n")
    grade = tmp_path / "grade.json"
    args = ("--checks", LIGHT, "--activity", "1.01", "--grade-json", grade)
    run = dlgrade("check", folder, *args)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("the submission has no activity_1_01.py") == 1, run.stdout
    assert "✗ activity_1_01 could not be imported  0/3  [missing module]" in run.stdout
    assert "This cost 2 checks (3 points):" in run.stdout
    assert "What to fix" not in run.stdout
    checks = json.loads(grade.read_text())["checks"]
    assert [(c["outcome"], c["reason"], c["points"]) for c in checks] == [
        ("error", "missing_module", 0)
    ] * len(checks)
    assert all("What to fix" not in c["feedback"] for c in checks)
