"""Correct solutions written unlike the reference score 100 %: the mirror of the mutants.

A mutant proves that a check catches a mistake; a variant proves that it does not take
points from correct work. Each folder under tests/variants/ is a complete, correct
submission in one student's style (see its modules' docstrings): ``book`` keeps the book's
idioms as far as Keras 3 allows (pandas DataFrames, ImageDataGenerator, ``input_dim=``,
``.add``), ``functional`` uses the functional API and tf.data, ``modern`` uses Keras 3 and
sklearn utilities. Each (variant, activity) pair is its own test so pytest-xdist spreads them;
an activity whose data is not here (4.01, 4.02 and 6.01 need NLTK's data and the book's first
review) is skipped with the reason its checks gave, which names the dataset and the fix.
"""

import shutil
from pathlib import Path

import pytest

from dlgrade.rubric import ACTIVITIES

pytestmark = pytest.mark.slow

VARIANTS = Path(__file__).resolve().parent / "variants"
VARIANT_NAMES = ("book", "functional", "modern")
#: reasons that say the check could not grade here (no data, no GPU), not that work is wrong
NOT_GRADED_HERE = ("data_missing", "runner")


@pytest.mark.parametrize("activity", list(ACTIVITIES))
@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_correct_variant_scores_full_marks(grade, tmp_path, variant, activity):
    module = f"{ACTIVITIES[activity][0]}.py"
    submission = tmp_path / variant
    submission.mkdir()
    shutil.copyfile(VARIANTS / variant / module, submission / module)
    graded = grade(submission, (activity,), "standard")
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
