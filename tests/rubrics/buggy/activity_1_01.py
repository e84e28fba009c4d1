"""A rubric with a bug of its own: the grader must report it as ours, loudly (exit 3)."""

import dlgrade

ACTIVITY = "1.01"


@dlgrade.check(points=1, feedback="never shown: the rubric itself is broken")
def test_rubric_bug(student):
    """A rubric that indexes a dict with a missing key."""
    student.loss_fn(0.0)
    {}["missing"]
