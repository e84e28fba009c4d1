"""How long a notebook takes to import in the worker, against the same code as a module.

For each reference solution: the module imported with importlib (its bytecode cached, as a
worker's second student would find it) and the same code as a student's notebook (magics,
one cell per function, a guarded try-it cell; tests/notebooks.py) loaded by
dlgrade.sandbox.notebook — median of five, TensorFlow and Keras already imported (as in a worker
after its preload). nbformat's own import is timed once.

    python benchmarks/notebook_import.py
"""

from __future__ import annotations

import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    code = "import time; t = time.perf_counter(); import nbformat; print(time.perf_counter() - t)"
    nbformat_s = float(subprocess.check_output([sys.executable, "-c", code], text=True))
    import keras  # noqa: F401 - as in a worker after its preload
    import tensorflow  # noqa: F401

    from dlgrade.rubric import ACTIVITIES
    from dlgrade.sandbox import notebook
    from tests.notebooks import as_student_notebook

    work = Path(tempfile.mkdtemp(prefix="dlgrade-nb-"))
    modules, notebooks = work / "modules", work / "notebooks"
    modules.mkdir()
    notebooks.mkdir()
    sys.path.insert(0, str(modules))
    print(f"{'activity':8} {'module ms':>10} {'notebook ms':>12}")
    totals = [0.0, 0.0]
    try:
        for activity, (module, _title) in ACTIVITIES.items():
            source = (REPO / "reference" / f"{module}.py").read_text()
            (modules / f"{module}.py").write_text(source)
            (notebooks / f"{module}.ipynb").write_text(as_student_notebook(source))
            as_module, as_notebook = [], []
            for _ in range(5):
                sys.modules.pop(module, None)
                importlib.invalidate_caches()
                began = time.perf_counter()
                importlib.import_module(module)
                as_module.append(time.perf_counter() - began)
                sys.modules.pop(module, None)
                began = time.perf_counter()
                notebook.load(module, notebooks / f"{module}.ipynb")
                as_notebook.append(time.perf_counter() - began)
            m, n = statistics.median(as_module) * 1000, statistics.median(as_notebook) * 1000
            totals[0] += m
            totals[1] += n
            print(f"{activity:8} {m:10.2f} {n:12.2f}")
        print(f"{'total':8} {totals[0]:10.2f} {totals[1]:12.2f}")
        print(f"nbformat's own import (once per worker that reads a notebook): {nbformat_s:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
