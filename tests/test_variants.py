"""Correct solutions written unlike the reference score 100 %: the mirror of the mutants.

A mutant proves that a check catches a mistake; a variant proves that it does not take
points from correct work. Each folder under tests/variants/ is a complete, correct
submission in one student's style (see its modules' docstrings): ``book`` keeps the book's
idioms as far as Keras 3 allows (pandas DataFrames, ImageDataGenerator, ``input_dim=``,
``.add``), ``functional`` uses the functional API and tf.data, ``modern`` uses Keras 3 and
sklearn utilities, ``pytorch`` is written as someone coming from PyTorch writes Keras 3
(subclassed, registered ``keras.Model``s, ``GradientTape`` loops, ``tf.data``). Each
(variant, activity) pair is its own test so pytest-xdist spreads them; an activity whose
data is not here (4.01, 4.02 and 6.01 need NLTK's data and the book's first review) is
skipped with the reason its checks gave, which names the dataset and the fix.
"""

import shutil
from pathlib import Path

import pytest

from dlgrade import data
from dlgrade.rubric import ACTIVITIES

pytestmark = pytest.mark.slow

VARIANTS = Path(__file__).resolve().parent / "variants"
VARIANT_NAMES = ("book", "functional", "modern", "pytorch")
#: reasons that say the check could not grade here (no data, no GPU), not that work is wrong
NOT_GRADED_HERE = ("data_missing", "runner")
#: activities whose full tier runs here on the book's own data (no GPU needed), with the
#: datasets that must be real for it: graded at the full tier, which holds the standard one
FULL_ON_REAL_DATA = {"1.01": (), "2.01": ("sonar",), "4.01": ("nltk",), "5.01": ("ibm",)}


def _missing_real_data(activity: str) -> list[str]:
    return [name for name in FULL_ON_REAL_DATA[activity] if data.status(name)[0] == "missing"]


@pytest.mark.parametrize("activity", list(ACTIVITIES))
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_correct_variant_scores_full_marks(grade, tmp_path, variant, activity):
    if activity in FULL_ON_REAL_DATA and not _missing_real_data(activity):
        pytest.skip(f"{activity} is graded at the full tier on the book's data here (below)")
    _expect_full_marks(grade, tmp_path, variant, activity, "standard")


@pytest.mark.parametrize("activity", list(FULL_ON_REAL_DATA))
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_correct_variant_scores_full_marks_at_the_full_tier_on_the_books_data(
    grade, tmp_path, variant, activity
):
    """Every check up to the full tier, on the real data (../shared/data in CI)."""
    missing = _missing_real_data(activity)
    if missing:
        pytest.skip(
            f"the full tier of {activity} needs the real {', '.join(missing)} data, not here: "
            "set DLGRADE_DATA_DIR to the mirror (docs/data.md)"
        )
    _expect_full_marks(grade, tmp_path, variant, activity, "full")


def _expect_full_marks(grade, tmp_path, variant: str, activity: str, tier: str) -> None:
    module = f"{ACTIVITIES[activity][0]}.py"
    submission = tmp_path / variant
    submission.mkdir()
    shutil.copyfile(VARIANTS / variant / module, submission / module)
    graded = grade(submission, (activity,), tier)
    checks = graded.grade["checks"]
    assert checks, f"no check of {activity} ran on the {variant} variant"
    not_here = [c for c in checks if c["reason"] in NOT_GRADED_HERE]
    wrong = [c for c in checks if c not in not_here and c["outcome"] != "pass"]
    assert not wrong, f"the rubric took points from the correct {variant} variant:\n" + "\n".join(
        f"  {c['id']} [{c['tier']}] {c['outcome']}/{c['reason']} "
        f"({c['points']:g}/{c['max_points']:g}): {c['feedback']}"
        for c in wrong
    )
    if not_here:
        pytest.skip(
            f"{len(not_here)} check(s) of {activity} could not grade here: "
            + "; ".join(f"{c['id']}: {c['reason']}: {c['feedback'][:200]}" for c in not_here)
        )
    assert graded.grade["score"] == graded.grade["max_score"] > 0, graded.outcomes
