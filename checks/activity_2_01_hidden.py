"""Hidden checks for Activity 2.01 — the submitted architecture on a split the student never sees.

Hidden checks live in their own file so that the student kit (``dlgrade kit``) can leave
them out whole. The data fixture and the CSV reader are the public rubric's, imported.

Calibration (``benchmarks/calibrate_activity_2_01.py``, table in docs/writing-checks.md):
a stratified split of 156 training / 52 held-out rows (split seed ``HIDDEN_SPLIT_SEED``),
30 epochs trained by the rubric itself on its trusted copy of the model: the reference
scores 0.843–0.882 on the held-out rows over seeds 0–9 → threshold 0.70. It catches what
the structure checks cannot see, e.g. "adam" with a learning rate of 1e-6: 0.43–0.61 over
seeds 0–7.
"""

import numpy as np
from activity_2_01 import _expected

# a fixture: pytest looks fixtures up by name in the module that uses them
from activity_2_01 import sonar_csv as sonar_csv

import dlgrade
from dlgrade import models

ACTIVITY = "2.01"
PRELOAD = ("keras",)
DATASETS = ("sonar",)

HIDDEN_SPLIT_SEED = 7_2011
HIDDEN_ACCURACY = 0.70


@dlgrade.check(
    points=3,
    tier="standard",
    visibility="hidden",
    feedback="the architecture from build_model() must learn to generalise: check the layer "
    "sizes, the activations (relu hidden, sigmoid output) and the loss.",
)
def test_architecture_generalises_on_a_hidden_split(submission, student, sonar_csv):
    """The submitted architecture, trained by the grader, beats 0.70 on unseen rows."""
    _, model, call = submission.build_model(student.build_model, unbuilt_shape=(None, 60))
    with models.student_model(call):
        accuracy = hidden_split_accuracy(model, sonar_csv)
    if accuracy < HIDDEN_ACCURACY:
        dlgrade.fail(
            f"trained by the grader on a split you have not seen, your architecture scores "
            f"{accuracy:.3f} on held-out rows; the book's reaches 0.84–0.88 (threshold "
            f"{HIDDEN_ACCURACY})"
        )


def hidden_split_accuracy(model, csv, split_seed=HIDDEN_SPLIT_SEED, epochs=30) -> float:
    """Train ``model`` (trusted copy) on a stratified 75 % and score the other 25 %."""
    X, classes = _expected(csv)
    y = (classes == np.unique(classes)[0]).astype(np.float32).reshape(-1, 1)
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(y), dtype=bool)
    for label in (0.0, 1.0):
        rows = np.flatnonzero(y[:, 0] == label)
        test[rng.choice(rows, size=len(rows) // 4, replace=False)] = True
    model.fit(X[~test], y[~test], epochs=epochs, verbose=0)
    predicted = (model.predict(X[test], verbose=0) > 0.5).astype(np.float32)
    return float(np.mean(predicted == y[test]))
