"""Root conftest: plain `pytest` runs the harness's own tests, never a rubric by accident.

Rubrics under checks/ run only when named (`pytest checks/activity_2_01.py --submission
DIR`) or through `dlgrade check`; reference/ and submissions/ hold code to grade, not tests.
"""

import os
import tempfile
from pathlib import Path

collect_ignore = ["reference", "submissions", "benchmarks"]

# Hypothesis caches examples under ./.hypothesis; tests must not write into the repository.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "dlgrade-hypothesis")
