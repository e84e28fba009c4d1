"""Calibrate Activity 2.01's training thresholds on the reference, one row per seed.

Run: DLGRADE_DATA_DIR=../shared/data python benchmarks/calibrate_activity_2_01.py [SEEDS]
Prints, per seed: the last and best training accuracy in the history train() returns, the
accuracy of the final weights on the training rows, and the held-out accuracy of the
hidden-split check (checks/activity_2_01_hidden.py). The rubrics' thresholds sit below the
worst row.
"""

import importlib.util
import sys
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(seeds: int) -> None:
    from dlgrade import data

    reference = _load(ROOT / "reference" / "activity_2_01.py", "reference_2_01")
    # The hidden rubric imports its public sibling by name, as it does under pytest.
    sys.path.insert(0, str(ROOT / "checks"))
    rubric = _load(ROOT / "checks" / "activity_2_01_hidden.py", "activity_2_01_hidden")
    csv = data.path("sonar")
    X, y = reference.load_data(csv)
    print("seed  last_hist  best_hist  final_weights  hidden_split")
    rows = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        model = reference.build_model()
        history = reference.train(model, X, y, epochs=30)
        final = float(np.mean((model.predict(X, verbose=0) > 0.5).astype(int) == y))
        keras.utils.set_random_seed(seed)
        hidden = rubric.hidden_split_accuracy(reference.build_model(), csv)
        row = (history["accuracy"][-1], max(history["accuracy"]), final, hidden)
        rows.append(row)
        print(f"{seed:4d}  " + "  ".join(f"{v:9.3f}" for v in row), flush=True)
    worst = np.min(np.array(rows), axis=0)
    print("min   " + "  ".join(f"{v:9.3f}" for v in worst))
    print("max   " + "  ".join(f"{v:9.3f}" for v in np.max(np.array(rows), axis=0)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
