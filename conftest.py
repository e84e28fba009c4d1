"""Root conftest: plain `pytest` runs the harness's own tests, never a rubric by accident.

Rubrics under checks/ run only when named (`pytest checks/activity_2_01.py --submission
DIR`) or through `dlgrade check`; reference/ and submissions/ hold code to grade, not tests.
"""

collect_ignore = ["reference", "submissions", "benchmarks"]
