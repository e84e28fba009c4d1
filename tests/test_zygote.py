"""Workers forked from a trusted zygote (dlgrade/sandbox/zygote.py) grade as fresh ones do,
and nothing a student leaves behind reaches the next student forked from the same zygote.

``DLGRADE_ZYGOTE=1`` turns the zygote on; these tests turn it on themselves."""

from __future__ import annotations

import socket

import pytest

from dlgrade.sandbox import zygote
from tests.helpers import ATTACKS, REFERENCE

pytestmark = pytest.mark.slow


def _same(graded) -> list[tuple]:
    """What a grade says, less how long it took."""
    return [
        (c["id"], c["outcome"], c["reason"], c["points"], c["feedback"], c["stdout"])
        for c in graded.grade["checks"]
    ]


def test_a_forked_worker_grades_as_a_fresh_one(grade, monkeypatch):
    monkeypatch.delenv("DLGRADE_ZYGOTE", raising=False)
    fresh = grade(REFERENCE, ("1.01",), "quick")
    monkeypatch.setenv("DLGRADE_ZYGOTE", "1")
    forked = grade(REFERENCE, ("1.01",), "quick")
    assert zygote._zygotes, "no zygote was started"
    assert forked.grade["score"] == forked.grade["max_score"] > 0, forked.outcomes
    assert _same(forked) == _same(fresh)


def test_nothing_a_student_leaves_behind_reaches_the_next_one(grade, monkeypatch):
    """The student before patches Keras, numpy, the environment, every folder it can
    write and starts a child that outlives it; the reference graded next from the same
    zygote gets exactly its grade alone."""
    monkeypatch.setenv("DLGRADE_ZYGOTE", "1")
    alone = grade(REFERENCE, ("1.01",), "quick")
    before = {key: z.proc.pid for key, z in zygote._zygotes.items()}
    polluter = grade(ATTACKS / "leave_state", ("1.01",), "quick")
    assert polluter.check("loss_fn_at_known_points")["outcome"] == "pass"  # it did run
    after = grade(REFERENCE, ("1.01",), "quick")
    assert {key: z.proc.pid for key, z in zygote._zygotes.items()} == before, (
        "the three were not forked from one zygote"
    )
    assert after.grade["score"] == after.grade["max_score"] > 0, after.outcomes
    assert _same(after) == _same(alone)


def test_the_zygote_is_sent_no_data_of_a_student(grade, monkeypatch):
    """Only pipes cross to the zygote; the launch description goes to the child alone,
    so no child finds another student's paths or settings in the memory it inherits."""
    monkeypatch.setenv("DLGRADE_ZYGOTE", "1")
    sent = []
    real = socket.send_fds

    def spy(sock, buffers, fds, *args):
        sent.append(list(buffers))
        return real(sock, buffers, fds, *args)

    monkeypatch.setattr(socket, "send_fds", spy)
    graded = grade(REFERENCE, ("1.01",), "quick", "-k", "loss_fn")
    assert graded.grade["score"] == graded.grade["max_score"] > 0
    assert sent and all(buffers == [b"fork"] for buffers in sent), sent


def test_a_class_gets_the_same_gradebook_with_and_without_the_zygote(tmp_path):
    """The light rubric's class of six (right, wrong, hanging, crashing, attacking, empty),
    graded with fresh workers and with forked ones: the same gradebook, to the byte."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import LIGHT, class_of_six, machine_to_ourselves, stable

    root = class_of_six(tmp_path / "submissions")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    books = {}
    with machine_to_ourselves():
        for setting in ("0", "1"):
            out = tmp_path / f"zygote-{setting}"
            command = [sys.executable, "-m", "dlgrade.cli", "grade", str(root), "--out"]
            command += [str(out), "--checks", str(LIGHT), "--call-timeout", "5", "--jobs", "2"]
            run = subprocess.run(
                command, capture_output=True, text=True, timeout=300,
                env=env | {"DLGRADE_ZYGOTE": setting},
            )  # fmt: skip
            assert run.returncode == 0, run.stdout + run.stderr
            books[setting] = (
                (out / "gradebook.csv").read_text(),
                stable(json.loads((out / "grades.json").read_text())),
            )
    assert books["1"] == books["0"]


def test_a_zygote_that_cannot_start_leaves_workers_to_start_fresh(monkeypatch, tmp_path):
    """A zygote that dies at start (here: its bootstrap exits) is a line on stderr, not a
    lost grade: the session's worker starts fresh and answers."""
    from dlgrade.sandbox import WorkerSession

    monkeypatch.setenv("DLGRADE_ZYGOTE", "1")
    dying = "import sys; print('no zygote today'); sys.exit(3)"
    monkeypatch.setattr(zygote, "ZYGOTE_BOOTSTRAP", dying)
    monkeypatch.setattr(zygote, "_zygotes", {})
    monkeypatch.setattr(zygote, "_failed", {})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mod.py").write_text("import os\n\ndef pid():\n    return os.getpid()\n")
    session = WorkerSession(tmp_path / "sub")
    try:
        assert isinstance(session.call("mod", "pid"), int)
    finally:
        session.close()
    assert not zygote._zygotes
    (why,) = zygote._failed.values()
    assert "the zygote did not start" in why and "no zygote today" in why
