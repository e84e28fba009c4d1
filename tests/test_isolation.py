"""Student code runs in the worker only: it cannot reach the rubric or rig its grade."""

import os


def test_a_submission_that_patches_the_grader_cannot_change_its_score(grade, broken, tmp_path):
    attack = broken("attacks/isolation")
    graded = grade(attack, ("1.01",), "quick", "--no-preload", "--call-timeout", "10")
    loss = graded.check("loss_fn_at_known_points")
    # Its loss_fn forgets abs(): an honest grader fails it, whatever the module patched.
    assert loss["outcome"] == "fail" and loss["points"] == 0, loss
    assert "loss_fn(0.0, (1.0, 0.0, -4.0)) returned -4; expected 4" in loss["feedback"]
    # solve() hard-codes 5.0: the hidden check on other quadratics catches it.
    assert graded.check("other_perfect_squares")["outcome"] == "fail"
    assert graded.grade["score"] < graded.grade["max_score"]
    # The patches ran (the module printed its loot count) but only inside the worker.
    assert "attack loot" in graded.check("solve_with_book_defaults")["stdout"]
    # The forged grade file landed in the worker's scratch copy, not in the submission,
    # and the grade the trusted side wrote is its own.
    assert not (attack / "grade.json").exists()
    assert graded.grade["score"] != 100


def _worker_environment(tmp_path):
    """The environment a worker sees (and its closed session, for its folders)."""
    from dlgrade.sandbox import WorkerSession

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.py").write_text(
        "import os\n\ndef env():\n    return dict(os.environ)\n"
    )
    session = WorkerSession(tmp_path / "sub")
    try:
        return session.call("activity_1_01", "env"), session
    finally:
        session.close()


def test_the_worker_gets_a_scrubbed_environment(monkeypatch, tmp_path):

    monkeypatch.setenv("GITHUB_TOKEN", "secret-token")
    monkeypatch.setenv("DLGRADE_DATA_DIR", str(tmp_path))
    env, session = _worker_environment(tmp_path)
    assert "GITHUB_TOKEN" not in env
    assert env["DLGRADE_DATA_DIR"] == str(tmp_path)
    assert env["HOME"].startswith(str(session.root))
    assert not any("PYTEST" in key for key in env)


def test_a_relative_data_mirror_reaches_the_worker_as_the_folder_it_names(monkeypatch, tmp_path):
    """`DLGRADE_DATA_DIR=../shared/data` (the README's own idiom) is relative to where the
    grader runs; the worker runs in its scratch copy, so it must get the absolute folder,
    and NLTK must be pointed at the mirror's corpora there too."""
    from dlgrade import data

    mirror = tmp_path / "shared" / "data"
    nltk = data.dataset("nltk")  # the mirror's layout, with placeholder bytes
    for file in nltk.files:
        (mirror / file.relpath).parent.mkdir(parents=True, exist_ok=True)
        (mirror / file.relpath).write_text("placeholder\n")
    for folder, count in nltk.folders:
        for index in range(count):
            (mirror / folder / f"item{index}").mkdir(parents=True, exist_ok=True)
    here = tmp_path / "grader"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("DLGRADE_DATA_DIR", "../shared/data")
    env, session = _worker_environment(tmp_path)
    assert env["DLGRADE_DATA_DIR"] == str(mirror)
    assert os.path.isdir(env["DLGRADE_DATA_DIR"])
    assert env.get("NLTK_DATA") == str(mirror / "nltk_data"), env.get("NLTK_DATA")


def test_a_data_mirror_reached_through_a_link_reaches_the_worker_by_its_real_path(
    monkeypatch, tmp_path
):
    """A mirror named through a symbolic link (`ci/shared -> /srv/shared`): the jail mounts
    the real folder and hides /tmp and home, so the worker must be told the real path."""
    from dlgrade.sandbox import WorkerSession

    real = tmp_path / "real" / "data"
    (real / "nltk_data" / "corpora").mkdir(parents=True)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "shared").symlink_to(tmp_path / "real")
    monkeypatch.setenv("DLGRADE_DATA_DIR", str(tmp_path / "links" / "shared" / "data"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "activity_1_01.py").write_text(
        "import os\n\ndef seen():\n"
        "    path = os.environ['DLGRADE_DATA_DIR']\n"
        "    return path, os.path.isdir(path)\n"
    )
    session = WorkerSession(tmp_path / "sub")
    try:
        path, visible = session.call("activity_1_01", "seen")
    finally:
        session.close()
    assert path == str(real)
    assert visible
