"""The class run (``dlgrade grade``): every student of a class, graded and recorded.

- :mod:`~dlgrade.classrun.engine`: plan, execute, settle, report — and the local executor;
- :mod:`~dlgrade.classrun.plugin`: the class run's pytest plugin (one test per check and
  student, a record written as each check ends), loaded beside the grading plugin;
- :mod:`~dlgrade.classrun.events`: what the plugin tells the controlling process;
- :mod:`~dlgrade.classrun.progress`: the live display;
- :mod:`~dlgrade.classrun.cluster`: the Dask executor and its grading server;
- :mod:`~dlgrade.classrun.roster`: the students of a run and the roster a session reads;
- :mod:`~dlgrade.classrun.lms`: students from an LMS export (Canvas, Moodle, Gradescope).

What other modules use is re-exported here.
"""

from dlgrade.classrun.engine import (
    BROKEN,
    CLASS_PLUGIN,
    EXIT_INTERRUPTED,
    INTERRUPTED,
    Executor,
    Job,
    LocalExecutor,
    StudentLost,
    class_students,
    collect,
    finished,
    plan,
    run,
    settle,
    summary,
)
from dlgrade.classrun.events import (
    CheckGraded,
    Event,
    GraderDied,
    StudentGraded,
    StudentStarted,
    student_of,
)

__all__ = [
    "BROKEN",
    "CLASS_PLUGIN",
    "EXIT_INTERRUPTED",
    "INTERRUPTED",
    "CheckGraded",
    "Event",
    "Executor",
    "GraderDied",
    "Job",
    "LocalExecutor",
    "StudentGraded",
    "StudentLost",
    "StudentStarted",
    "class_students",
    "collect",
    "finished",
    "plan",
    "run",
    "settle",
    "student_of",
    "summary",
]
