"""Every check kills at least one mutant: a copy of the reference with one deliberate mistake.

A mutant is a small file under tests/mutants/: which checks it must fail (`# kills:`), then
the reference lines it replaces (`---`) and their replacement (`+++`). Keeping mutants as
edits of the reference means they follow the reference when it changes, and a reviewer
sees the one mistake at a glance. A mutant whose mistake only another style can make edits
that acceptance variant instead, named in its header (`# base: pytorch` edits
tests/variants/pytorch/). A mutant may also fail a check it does not name only when
that cannot be avoided, listed with its reason (`# knock-on: check — why`).
"""

import ast

import pytest

from dlgrade.rubric import ACTIVITIES, TIERS
from tests.helpers import MUTANT_FILES, VARIANTS, Mutant, rubric_files

pytestmark = pytest.mark.slow


def rubric_checks(activity: str) -> dict[str, str]:
    """check name → tier, read from the rubrics' source (decorator keywords), hidden included."""
    checks = {}
    nodes = [node for path in rubric_files(activity) for node in ast.parse(path.read_text()).body]
    for node in nodes:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tier = "quick"
            for decorator in node.decorator_list:
                for keyword in getattr(decorator, "keywords", []):
                    if keyword.arg == "tier":
                        tier = keyword.value.value
            checks[node.name.removeprefix("test_")] = tier
    return checks


@pytest.mark.parametrize("path", MUTANT_FILES, ids=[p.stem for p in MUTANT_FILES])
def test_mutant_fails_the_checks_it_names_and_no_other(grade, tmp_path, path):
    """Every named check catches the mistake, and no other check takes points for it (one
    mistake, one deduction), except a knock-on the mutant file lists with its reason.

    The mutant is graded on all checks of its activity, public and hidden, at the highest
    tier it names: a quick-tier mistake is not run through the standard checks here (they
    feed the grader's own inputs to the function under test, so only 7.01's train_gan,
    which calls the student's other functions, can pass a mistake on);
    ``benchmarks/knock_on.py`` grades every mutant at the standard tier.
    """
    mutant = Mutant.parse(path)
    checks = rubric_checks(mutant.activity)
    assert set(mutant.kills) <= set(checks), f"unknown checks in {path.name}"
    assert set(mutant.knock_ons) <= set(checks), f"unknown knock-on checks in {path.name}"
    tier = max((checks[k] for k in (*mutant.kills, *mutant.knock_ons)), key=TIERS.index)
    graded = grade(mutant.write(tmp_path / "mutant"), (mutant.activity,), tier)
    graded_here, not_here = 0, []
    for name in mutant.kills:
        result = graded.check(name)
        if result["reason"] in ("data_missing", "runner"):
            # a failure for lack of data or a GPU proves nothing about the check
            not_here.append(" ".join(result["feedback"].split()))
            continue
        graded_here += 1
        assert result["outcome"] != "pass", f"{mutant.name} survived {name}"
        assert result["reason"] not in ("rubric_error", "harness_error"), result["feedback"]
    others = {
        check["id"].split("/", 1)[1]: check
        for check in graded.grade["checks"]
        if check["id"].split("/", 1)[1] not in mutant.kills
    }
    knocked = {
        name: f"[{check['outcome']}: {check['reason']}] {check['feedback'][:300]}"
        for name, check in others.items()
        if check["outcome"] != "pass" and check["reason"] not in ("data_missing", "runner")
    }
    unlisted = {name: why for name, why in knocked.items() if name not in mutant.knock_ons}
    assert not unlisted, f"{mutant.name} also fails {unlisted}"
    if not graded_here:
        pytest.skip(f"{mutant.name} could not be graded here: {not_here[0]}")


def test_a_knock_on_line_is_read_with_its_reason(tmp_path):
    path = tmp_path / "7.01-example.mutant"
    path.write_text(
        "# kills: real_data_batches\n"
        "# knock-on: trace_is_recorded_every_50_iterations_and_stays_balanced — train_gan "
        "calls realData\n---\n    a\n+++\n    b\n"
    )
    mutant = Mutant.parse(path)
    assert mutant.kills == ("real_data_batches",)
    assert mutant.knock_ons == {
        "trace_is_recorded_every_50_iterations_and_stays_balanced": "train_gan calls realData"
    }


def test_a_base_line_applies_the_edit_to_that_variant(tmp_path):
    path = tmp_path / "5.01-example.mutant"
    path.write_text(
        "# base: pytorch\n# kills: model_architecture\n---\n"
        "        x = self.relu(self.conv(x))\n+++\n        x = self.conv(x)\n"
    )
    mutant = Mutant.parse(path)
    assert mutant.base == VARIANTS / "pytorch"
    written = (mutant.write(tmp_path / "out") / "activity_5_01.py").read_text()
    original = (VARIANTS / "pytorch" / "activity_5_01.py").read_text()
    assert written == original.replace("self.relu(self.conv(x))", "self.conv(x)") != original


@pytest.mark.parametrize("activity", list(ACTIVITIES))
def test_every_check_has_a_mutant(activity):
    """Every activity the rubrics declare: one without mutants fails here, never skips."""
    killed = {
        name
        for path in MUTANT_FILES
        for name in Mutant.parse(path).kills
        if Mutant.parse(path).activity == activity
    }
    assert set(rubric_checks(activity)) <= killed, set(rubric_checks(activity)) - killed


def test_every_mutant_belongs_to_a_declared_activity():
    strays = [p.name for p in MUTANT_FILES if Mutant.parse(p).activity not in ACTIVITIES]
    assert not strays, f"mutants of no declared activity (N.NN-what.mutant): {strays}"


def test_mutant_files_apply_to_the_current_reference(tmp_path):
    for index, path in enumerate(MUTANT_FILES):
        Mutant.parse(path).write(tmp_path / str(index))


def test_a_mutant_that_no_longer_applies_is_reported(tmp_path):
    stale = tmp_path / "1.01-stale.mutant"
    stale.write_text("# kills: start_is_honoured\n---\n    no such line\n+++\n    x\n")
    with pytest.raises(AssertionError, match="must occur once"):
        Mutant.parse(stale).write(tmp_path / "out")
