"""``dlgrade calibrate``: how often each check fails correct work, and how often it catches
the mistakes it is meant to catch.

For each seed, one class folder — a student folder per correct solution (the reference, the
acceptance variants, any ``--solutions`` folders) and per mutant (the reference with one
deliberate mistake, dlgrade/mutants.py) — is graded by the class run (``dlgrade grade``, in a
subprocess: the same sandbox, zygote and records as a real class). From the records:

* per check that measured a value (``dlgrade.measured``: a stochastic check), the values of
  correct work (min, quartiles, max), the threshold, the pass rate and the exact one-sided
  95 % upper bound on the false-fail rate (:func:`upper_bound`), the margin from the worst
  correct run to the threshold, and each mutant's catch rate where its ``# kills:`` line
  names the check;
* per deterministic check, the same pass rates (they should be 1.0).

Runs that did not end as the student's code meant them to (an error, a timeout, a busy
machine) are counted apart, never as a pass or a fail. The result is merged into
``checks/calibration.json`` (:func:`write`) with the environment and a hash of each check's
source (:func:`rubric_checks`), from which ``tests/test_calibration.py`` tells when an entry is
stale (:func:`stale`); :func:`table` renders it for docs/calibration.md.

docs/writing-checks.md ("Calibrating a stochastic check") gives the statistics' reasoning.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import math
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from dlgrade import activities as registry
from dlgrade.atomic import write_atomic
from dlgrade.errors import UsageError
from dlgrade.gradebook import GRADED, GradebookError, read_record, record_path, safe_id
from dlgrade.mutants import Mutant, MutantError, mutant_files
from dlgrade.reasons import GRADER_FAULTS, ExitCode
from dlgrade.rubric import TIERS, hidden_name
from dlgrade.sandbox.notebook import SUFFIXES
from dlgrade.text import dumps

SCHEMA_VERSION = 1
FILE = "calibration.json"
CONFIDENCE = 0.95
#: the command that generates docs/calibration.md from the calibration file
TABLE_COMMAND = "dlgrade calibrate --only-table --table docs/calibration.md"
#: written in each seed's run folder: what was graded there (a change regrades the seed)
STAMP = "calibrate-stamp.json"


# -- statistics ---------------------------------------------------------------------------


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed exactly term by term (in logs)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    total = 0.0
    for i in range(0, min(k, n) + 1):
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * math.log(p)
            + (n - i) * math.log1p(-p)
        )
        total += math.exp(log_term)
    return min(total, 1.0)


def upper_bound(failures: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The exact (Clopper–Pearson) one-sided upper confidence bound on a failure rate after
    ``failures`` failures in ``n`` runs: the p at which seeing ``failures`` or fewer has
    probability 1 − ``confidence`` (the Beta(k+1, n−k) quantile). With no failure it is
    1 − (1 − confidence)^(1/n): 0.1391 for n = 20; 1.0 when nothing was run."""
    if n <= 0:
        return 1.0
    if not 0 <= failures <= n:
        raise ValueError(f"upper_bound: failures must be between 0 and n={n}, got {failures}")
    if failures == n:
        return 1.0
    alpha = 1 - confidence
    if failures == 0:
        return 1 - alpha ** (1 / n)
    low, high = failures / n, 1.0  # the CDF falls as p rises: bisect for CDF(p) = alpha
    for _ in range(200):
        middle = (low + high) / 2
        if binomial_cdf(failures, n, middle) > alpha:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return high


def quartiles(values: list[float]) -> tuple[float, float, float, float, float]:
    """min, first quartile, median, third quartile, max (inclusive method)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return (ordered[0],) * 5
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return ordered[0], q1, median, q3, ordered[-1]


# -- what the rubric says about its checks -------------------------------------------------


@dataclass(frozen=True)
class CheckSource:
    """One ``@dlgrade.check`` function as the rubric file declares it."""

    id: str  # "2.01/training_reaches_book_accuracy"
    file: str  # the rubric file's name
    tier: str
    visibility: str
    #: sha256 of the function's source and of the module-level names it uses (transitively)
    sha256: str
    #: the third argument of its ``dlgrade.measured`` call, evaluated; None when it has none
    threshold: float | None
    #: ``">="`` or ``"<="`` (``at_most=True``) when it measures a value
    op: str | None


def _is_check_decorator(node: ast.expr) -> bool:
    call = node.func if isinstance(node, ast.Call) else node
    return (isinstance(call, ast.Attribute) and call.attr == "check") or (
        isinstance(call, ast.Name) and call.id == "check"
    )


def _keyword(decorator: ast.expr, name: str, default: str) -> str:
    if isinstance(decorator, ast.Call):
        for keyword in decorator.keywords:
            if keyword.arg == name and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return default


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    """Module-level name → the statement that defines it (the last one wins)."""
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _used(node: ast.AST) -> set[str]:
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    # parameters name the rubric's own fixtures
    for function in ast.walk(node):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            used |= {a.arg for a in function.args.args + function.args.kwonlyargs}
    return used


def _evaluate(node: ast.expr, names: dict[str, ast.stmt], depth: int = 0) -> float | None:
    """A threshold expression: numbers, module constants, + − × ÷ (None for anything else)."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            return None
        return float(node.value)
    if isinstance(node, ast.Name):
        statement = names.get(node.id)
        if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
            return _evaluate(statement.value, names, depth + 1)
        return None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, names, depth + 1)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, names, depth + 1)
        right = _evaluate(node.right, names, depth + 1)
        if left is None or right is None:
            return None
        try:
            return {
                ast.Add: lambda: left + right,
                ast.Sub: lambda: left - right,
                ast.Mult: lambda: left * right,
                ast.Div: lambda: left / right,
            }[type(node.op)]()
        except (KeyError, ZeroDivisionError):
            return None
    return None


def _measured_call(function: ast.AST) -> ast.Call | None:
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            called = node.func
            if (isinstance(called, ast.Attribute) and called.attr == "measured") or (
                isinstance(called, ast.Name) and called.id == "measured"
            ):
                return node
    return None


def _threshold(
    call: ast.Call | None, names: dict[str, ast.stmt]
) -> tuple[float | None, str | None]:
    if call is None:
        return None, None
    at_most = any(
        k.arg == "at_most" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )
    argument = call.args[2] if len(call.args) > 2 else None
    for keyword in call.keywords:
        if keyword.arg == "threshold":
            argument = keyword.value
    value = _evaluate(argument, names) if argument is not None else None
    return value, "<=" if at_most else ">="


def file_checks(path: Path, activity: str) -> dict[str, CheckSource]:
    """The ``@dlgrade.check`` functions of one rubric file, read with :mod:`ast`."""
    text = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    names = _top_level(tree)
    found: dict[str, CheckSource] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        decorators = [d for d in node.decorator_list if _is_check_decorator(d)]
        if not decorators:
            continue
        # the check, then every module-level definition it reaches, in the file's order
        reached, todo = {node.name: node}, list(_used(node))
        while todo:
            name = todo.pop()
            statement = names.get(name)
            if statement is None or name in reached or statement in reached.values():
                continue
            reached[name] = statement
            todo.extend(_used(statement))
        parts = sorted({id(s): s for s in reached.values()}.values(), key=lambda s: s.lineno)
        digest = hashlib.sha256()
        for statement in parts:
            digest.update((ast.get_source_segment(text, statement) or "").encode())
            digest.update(b"\n\0")
        threshold, op = _threshold(_measured_call(node), names)
        check_id = f"{activity}/{node.name.removeprefix('test_')}"
        found[check_id] = CheckSource(
            id=check_id,
            file=Path(path).name,
            tier=_keyword(decorators[0], "tier", "quick"),
            visibility=_keyword(decorators[0], "visibility", "public"),
            sha256=digest.hexdigest(),
            threshold=threshold,
            op=op,
        )
    return found


def rubric_checks(rubric_root: Path, activity: str) -> dict[str, CheckSource]:
    """Every check of ``activity`` in ``rubric_root`` (its public rubric and hidden file)."""
    public = Path(rubric_root) / f"{registry.module_name(activity)}.py"
    if not public.is_file():
        raise UsageError(f"no rubric for activity {activity} in {rubric_root}")
    checks = file_checks(public, activity)
    hidden = public.with_name(hidden_name(public.name))
    if hidden.is_file():
        checks.update(file_checks(hidden, activity))
    return checks


# -- the class that is graded --------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    """One student folder of the calibration class."""

    id: str  # "ref", "variant-book", "sol-alice", "mutant-2.01-relu-output"
    files: tuple[Path, ...]  # the activity file(s) it holds
    mutant: Mutant | None = None

    @property
    def correct(self) -> bool:
        return self.mutant is None


def _activity_file(folder: Path, activity: str) -> Path | None:
    for suffix in SUFFIXES:
        candidate = Path(folder) / f"{registry.module_name(activity)}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Plan:
    activity: str
    tier: str
    seeds: list[int]
    rubric_root: Path
    out: Path
    jobs: int
    students: list[Student] = field(default_factory=list)

    @property
    def class_dir(self) -> Path:
        return self.out / "class" / self.activity

    def run_dir(self, seed: int) -> Path:
        return self.out / "runs" / self.activity / self.tier / f"seed-{seed}"


def students_for(
    activity: str,
    *,
    reference: Path | None,
    variants: Path | None,
    solutions: list[Path],
    mutants: Path | None,
) -> list[Student]:
    """The calibration class of one activity: correct work first, then the mutants."""
    students: list[Student] = []
    taken: set[str] = set()

    def add(name: str, files: tuple[Path, ...], mutant: Mutant | None = None) -> None:
        base, number = safe_id(name), 2
        unique = base
        while unique in taken:
            unique, number = f"{base}-{number}", number + 1
        taken.add(unique)
        students.append(Student(unique, files, mutant))

    if reference is not None and (found := _activity_file(reference, activity)):
        add("ref", (found,))
    if variants is not None and variants.is_dir():
        for variant in sorted(p for p in variants.iterdir() if p.is_dir()):
            if found := _activity_file(variant, activity):
                add(f"variant-{variant.name}", (found,))
    for folder in solutions:
        if found := _activity_file(folder, activity):
            add(f"sol-{Path(folder).resolve().name}", (found,))
    if mutants is not None:
        for path in mutant_files(mutants):
            if path.stem.split("-", 1)[0] != activity:
                continue
            mutant = Mutant.parse(path, reference=reference, variants=variants)
            add(f"mutant-{mutant.name}", (), mutant)
    return students


def build_class(plan: Plan) -> None:
    """Write (or leave as they are) the class folder's student folders."""
    folder = plan.class_dir
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {s.id for s in plan.students}
    for stale in folder.iterdir():
        if stale.name not in wanted:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    for student in plan.students:
        target = folder / student.id
        if student.mutant is not None:
            contents = {student.mutant.module: student.mutant.source()}
        else:
            contents = {p.name: p.read_text(encoding="utf-8") for p in student.files}
        target.mkdir(exist_ok=True)
        for name, text in contents.items():
            path = target / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
        for extra in target.iterdir():
            if extra.name not in contents:
                shutil.rmtree(extra) if extra.is_dir() else extra.unlink()


def _stamp(plan: Plan, seed: int) -> dict[str, Any]:
    """What decides a seed's records: the activity, tier, seed and the checks' sources (a
    student added to the class is graded without regrading the others)."""
    checks = rubric_checks(plan.rubric_root, plan.activity)
    return {
        "activity": plan.activity,
        "tier": plan.tier,
        "seed": seed,
        "checks": {check_id: source.sha256 for check_id, source in sorted(checks.items())},
    }


def _same_stamp(run: Path, stamp: dict[str, Any]) -> bool:
    try:
        found = json.loads((run / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(found.get(k) == v for k, v in stamp.items())


def seed_done(plan: Plan, seed: int) -> bool:
    """The seed's run folder holds a graded record of every student, made by the same
    rubric checks (a record of an incomplete run, or of an edited rubric, is graded again)."""
    run = plan.run_dir(seed)
    if not _same_stamp(run, _stamp(plan, seed)):
        return False
    for student in plan.students:
        try:
            record = read_record(record_path(run, student.id))
        except GradebookError:
            return False
        if record.status != GRADED or record.seed != seed or record.tier != plan.tier:
            return False
    return True


def _stop(process: subprocess.Popen) -> None:
    """Let the class run stop as Ctrl-C stops it (it got the SIGINT too, from the terminal;
    else it is sent one), keeping the records it wrote; kill it only if it will not."""
    for signal_to_send in (None, signal.SIGINT, signal.SIGKILL):
        if signal_to_send is not None:
            process.send_signal(signal_to_send)
        try:
            process.wait(timeout=5 if signal_to_send is None else 60)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            process.kill()
            process.wait()
            return


def grade_seed(plan: Plan, seed: int) -> None:
    """Grade the class folder with ``seed`` (``dlgrade grade`` in a subprocess); its output
    goes to ``grade.log`` in the seed's run folder."""
    run = plan.run_dir(seed)
    run.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(plan, seed)
    # records of an edited rubric's checks are graded again
    force = not _same_stamp(run, stamp) and any((run / "students").glob("*.json"))
    # written first: a run stopped half-way keeps the students it graded
    write_atomic(run / STAMP, dumps(stamp, indent=2) + "\n")
    command = [
        sys.executable, "-m", "dlgrade.cli", "grade", str(plan.class_dir),
        "--out", str(run), "--seed", str(seed), "--tier", plan.tier,
        "--activity", plan.activity, "--jobs", str(plan.jobs), "--checks", str(plan.rubric_root),
    ]  # fmt: skip
    if force:
        command.append("--force")
    log = run / "grade.log"
    with open(log, "w", encoding="utf-8") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            _stop(process)
            raise
    if code not in (ExitCode.OK, ExitCode.FAILED, ExitCode.INTERNAL):
        # FAILED: a mutant failed; INTERNAL: a grader fault, counted apart in the records
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise UsageError(
            f"calibrate: `dlgrade grade` of {plan.class_dir} with seed {seed} exited {code}; "
            f"its output ({log}) ends:\n{tail}"
        )


# -- from the records to the calibration -------------------------------------------------


def _rounded(value: float) -> float:
    return float(f"{value:.6g}") if math.isfinite(value) else value


def _counted(outcome: str, reason: str) -> str:
    """``pass``, ``fail`` or ``other``: errors, timeouts and grader faults are not a fail."""
    if outcome == "pass":
        return "pass"
    if outcome == "fail" and reason not in GRADER_FAULTS:
        return "fail"
    return "other"


def collect(plan: Plan, seeds: list[int]) -> dict[str, dict[str, Any]]:
    """Per check of the activity: the outcomes and values of the graded seeds."""
    sources = rubric_checks(plan.rubric_root, plan.activity)
    checks: dict[str, dict[str, Any]] = {}
    devices: set[str] = set()
    for seed in seeds:
        run = plan.run_dir(seed)
        for student in plan.students:
            path = record_path(run, student.id)
            if not path.is_file():
                continue
            record = read_record(path)
            if record.device:
                devices.add("GPU" if record.device.startswith("GPU") else "CPU")
            for result in record.checks:
                if result.activity != plan.activity or result.id not in sources:
                    continue
                entry = checks.setdefault(
                    result.id,
                    {"runs": [], "mutants": {}, "measured": None},
                )
                counted = _counted(result.outcome, result.reason)
                if student.correct:
                    value = result.measured.value if result.measured else None
                    if result.measured is not None:
                        entry["measured"] = result.measured
                    entry["runs"].append((seed, student.id, counted, result.reason, value))
                elif result.id.split("/", 1)[1] in student.mutant.kills:
                    tally = entry["mutants"].setdefault(
                        student.mutant.name, {"caught": 0, "graded": 0, "not_graded": 0}
                    )
                    if result.reason in GRADER_FAULTS:
                        tally["not_graded"] += 1
                    else:
                        tally["graded"] += 1
                        tally["caught"] += result.outcome != "pass"
    return {"checks": checks, "devices": sorted(devices)}


def environment(devices: list[str]) -> dict[str, str]:
    """The versions and machine the calibration ran with (no library is imported)."""

    def version(*names: str) -> str:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return "absent"

    return {
        "dlgrade": version("dlgrade"),
        "tensorflow": version("tensorflow", "tensorflow-cpu"),
        "keras": version("keras"),
        "numpy": version("numpy"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": "+".join(devices) or "CPU",
    }


def summarise(plan: Plan, seeds: list[int]) -> dict[str, Any]:
    """The calibration entries of the activity's checks graded in ``seeds``."""
    collected = collect(plan, seeds)
    sources = rubric_checks(plan.rubric_root, plan.activity)
    env = environment(collected["devices"])
    entries: dict[str, Any] = {}
    for check_id, data in sorted(collected["checks"].items()):
        source = sources[check_id]
        runs = data["runs"]
        passes = sum(r[2] == "pass" for r in runs)
        failures = sum(r[2] == "fail" for r in runs)
        not_graded: dict[str, int] = {}
        for run in runs:
            if run[2] == "other":
                key = run[3] or "error"
                not_graded[key] = not_graded.get(key, 0) + 1
        measured = data["measured"]
        entry: dict[str, Any] = {
            "tier": source.tier,
            "calibrated_at": plan.tier,
            "seeds": list(seeds),
            "correct": sorted({r[1] for r in runs}),
            "visibility": source.visibility,
            "stochastic": measured is not None or source.op is not None,
            "runs": len(runs),
            "n": passes + failures,
            "passes": passes,
            "failures": failures,
            "not_graded": dict(sorted(not_graded.items())),
            "pass_rate": _rounded(passes / (passes + failures)) if passes + failures else None,
            "false_fail_upper_95": _rounded(upper_bound(failures, passes + failures)),
            "source_sha256": source.sha256,
            "rubric_threshold": source.threshold,
            "environment": env,
        }
        if entry["stochastic"]:
            values = [r[4] for r in runs if r[4] is not None]
            # the same seed gives each correct solution the same check seed: solutions that
            # compute the same thing give the same value, one trial, not several
            trials = {(r[0], repr(r[4]), r[2]) for r in runs if r[2] != "other"}
            trial_failures = sum(t[2] == "fail" for t in trials)
            threshold = measured.threshold if measured else source.threshold
            op = measured.op if measured else source.op
            entry.update(
                {
                    "measured": measured.what if measured else None,
                    "threshold": threshold,
                    "op": op,
                    "values": [_rounded(v) for v in values],
                    "independent_trials": len(trials),
                    "independent_failures": trial_failures,
                    "false_fail_upper_95_independent": _rounded(
                        upper_bound(trial_failures, len(trials))
                    ),
                }
            )
            if values and threshold is not None:
                low, q1, median, q3, high = quartiles(values)
                entry.update(
                    {
                        "min": _rounded(low),
                        "q1": _rounded(q1),
                        "median": _rounded(median),
                        "q3": _rounded(q3),
                        "max": _rounded(high),
                        "margin": _rounded(low - threshold if op == ">=" else threshold - high),
                    }
                )
        entry["mutants"] = {
            name: {
                **tally,
                "catch_rate": _rounded(tally["caught"] / tally["graded"])
                if tally["graded"]
                else None,
            }
            for name, tally in sorted(data["mutants"].items())
        }
        entries[check_id] = entry
    return entries


# -- the calibration file ------------------------------------------------------------------


def empty() -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "generated_by": "dlgrade calibrate",
        "note": "measured values of correct work and mutants per check; see "
        "docs/writing-checks.md (Calibrating a stochastic check)",
        "activities": {},
    }


def read(path: Path) -> dict[str, Any]:
    """The calibration file (an empty calibration where there is none)."""
    path = Path(path)
    if not path.is_file():
        return empty()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UsageError(
            f"{path}: not a calibration file ({exc}); delete it and run `dlgrade calibrate` again"
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        raise UsageError(
            f"{path}: calibration schema {data.get('schema') if isinstance(data, dict) else '?'}"
            f", this dlgrade reads schema {SCHEMA_VERSION}; delete it and run `dlgrade "
            "calibrate` again"
        )
    return data


def merge(calibration: dict[str, Any], activity: str, entries: dict[str, Any]) -> dict[str, Any]:
    """``calibration`` with ``entries`` replacing those of the same checks (every other
    activity's and check's entry is kept)."""
    merged = copy.deepcopy(calibration)
    checks = merged.setdefault("activities", {}).setdefault(activity, {"checks": {}})
    checks.setdefault("checks", {}).update(entries)
    checks["checks"] = dict(sorted(checks["checks"].items()))
    merged["activities"] = dict(
        sorted(merged["activities"].items(), key=lambda item: registry.sort_key(item[0]))
    )
    return merged


def write(path: Path, calibration: dict[str, Any]) -> Path:
    return write_atomic(Path(path), dumps(calibration, indent=2) + "\n")


# -- staleness -----------------------------------------------------------------------------


def refresh_command(activity: str, entry: dict[str, Any]) -> str:
    return (
        f"dlgrade calibrate --activity {activity} --tier {entry.get('calibrated_at', 'standard')}"
        f" --seeds {len(entry.get('seeds', [])) or 20}"
    )


def stale(calibration: dict[str, Any], rubric_root: Path) -> list[str]:
    """One line per calibration entry whose check changed since: its source (or what it
    uses), its threshold, or it is gone — each with the command that refreshes it."""
    problems = []
    for activity, data in calibration.get("activities", {}).items():
        try:
            current = rubric_checks(Path(rubric_root), activity)
        except UsageError:
            current = {}
        for check_id, entry in data.get("checks", {}).items():
            command = refresh_command(activity, entry)
            source = current.get(check_id)
            if source is None:
                why = f"no check {check_id} in {rubric_root} any more"
            elif source.threshold != entry.get("rubric_threshold"):
                why = (
                    f"{check_id}: its threshold changed from {entry.get('rubric_threshold')} "
                    f"to {source.threshold}"
                )
            elif source.sha256 != entry.get("source_sha256"):
                why = f"{check_id}: its source ({source.file}) changed since it was calibrated"
            else:
                continue
            problems.append(f"{why}; refresh it with `{command}`")
    return problems


# -- the table -----------------------------------------------------------------------------


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _not_graded(entry: dict[str, Any]) -> str:
    counts = entry.get("not_graded") or {}
    return ", ".join(f"{n} {reason}" for reason, n in counts.items()) or "0"


def _mutants(entry: dict[str, Any]) -> str:
    found = entry.get("mutants") or {}
    return "<br>".join(f"{name}: {t['caught']}/{t['graded']}" for name, t in found.items()) or "–"


def table(calibration: dict[str, Any]) -> str:
    """docs/calibration.md: per activity, the stochastic checks, then the deterministic."""
    lines = [
        "# Calibration of the checks",
        "",
        f"<!-- Generated from checks/calibration.json by `{TABLE_COMMAND}`; do not edit. -->",
        "",
        "Generated by `dlgrade calibrate` (dlgrade/calibrate.py) from `checks/calibration.json`;"
        f" regenerate with `{TABLE_COMMAND}`. How to read it and why: docs/writing-checks.md,",
        '"Calibrating a stochastic check".',
        "",
        "- **n**: runs of correct work that passed or failed; **not graded**: runs that ended "
        "otherwise (an error, a timeout, a busy machine), counted as neither.",
        "- **false-fail ≤**: the exact one-sided 95 % (Clopper–Pearson) upper bound on the "
        "rate "
        "at which the check fails correct work; **indep.**: the same over independent trials "
        "(correct solutions that gave the same value under the same seed count once).",
        "- **margin**: from the worst correct run to the threshold (positive: every run cleared "
        "it).",
        "- **mutants**: caught / graded, for each mutant whose `# kills:` line names the check.",
        "",
    ]
    for activity, data in calibration.get("activities", {}).items():
        checks = data.get("checks", {})
        stochastic = {k: v for k, v in checks.items() if v.get("stochastic")}
        fixed = {k: v for k, v in checks.items() if not v.get("stochastic")}
        lines += [f"## Activity {activity}", ""]
        if stochastic:
            lines += [
                "| check | tier | measured | n | pass rate | false-fail ≤ | indep. | min | q1 | "
                "median | q3 | max | threshold | margin | not graded | mutants |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for check_id, e in stochastic.items():
                lines.append(
                    f"| `{check_id.split('/', 1)[1]}` | {e.get('tier')} "
                    f"| {e.get('measured') or '–'} "
                    f"| {e.get('n')} | {_percent(e.get('pass_rate'))} "
                    f"| {_percent(e.get('false_fail_upper_95'))} "
                    f"| {_percent(e.get('false_fail_upper_95_independent'))} "
                    f"({e.get('independent_trials', '–')}) "
                    f"| {_number(e.get('min'))} | {_number(e.get('q1'))} "
                    f"| {_number(e.get('median'))} | {_number(e.get('q3'))} "
                    f"| {_number(e.get('max'))} | {e.get('op', '')} {_number(e.get('threshold'))} "
                    f"| {_number(e.get('margin'))} | {_not_graded(e)} | {_mutants(e)} |"
                )
            lines.append("")
        if fixed:
            lines += [
                "Deterministic checks (no measured value; their pass rate should be 100 %):",
                "",
                "| check | tier | n | pass rate | false-fail ≤ | not graded | mutants |",
                "|---|---|---|---|---|---|---|",
            ]
            for check_id, e in fixed.items():
                lines.append(
                    f"| `{check_id.split('/', 1)[1]}` | {e.get('tier')} | {e.get('n')} "
                    f"| {_percent(e.get('pass_rate'))} | {_percent(e.get('false_fail_upper_95'))} "
                    f"| {_not_graded(e)} | {_mutants(e)} |"
                )
            lines.append("")
        environments = {
            json.dumps(e.get("environment", {}), sort_keys=True, allow_nan=False): e
            for e in checks.values()
        }
        for text, e in environments.items():
            env = json.loads(text)
            seeds = e.get("seeds", [])
            lines.append(
                f"Calibrated at tier {e.get('calibrated_at')} over {len(seeds)} seeds "
                f"({seeds[0] if seeds else '–'}–{seeds[-1] if seeds else '–'}) on "
                f"{', '.join(e.get('correct', []))}: dlgrade {env.get('dlgrade')}, TensorFlow "
                f"{env.get('tensorflow')}, Keras {env.get('keras')}, numpy {env.get('numpy')}, "
                f"Python {env.get('python')}, {env.get('machine')} {env.get('device')}."
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# -- the command ---------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def run(
    *,
    activities: list[str] | None,
    tier: str,
    seeds: int,
    first_seed: int,
    solutions: list[Path],
    mutants: Path | None,
    no_mutants: bool,
    jobs: int,
    out: Path,
    rubric_root: Path,
    table_path: Path | None = None,
    stream=None,
) -> int:
    """Calibrate, merge into ``rubric_root``/calibration.json, write the table (if asked)."""
    stream = stream or sys.stderr
    if tier not in TIERS:
        raise UsageError(f"--tier must be one of {', '.join(TIERS)}")
    if seeds < 1:
        raise UsageError(
            "--seeds must be at least 1 (20 or more for a false-fail bound under 14 %)"
        )
    known = registry.registry(rubric_root)
    chosen = list(dict.fromkeys(activities or known))
    unknown = [a for a in chosen if a not in known]
    if unknown:
        raise UsageError(f"unknown activity {', '.join(unknown)}; known: {', '.join(known)}")
    for folder in solutions:
        if not Path(folder).is_dir():
            raise UsageError(f"--solutions {folder}: not a folder of activity files")
    repository = rubric_root.parent
    reference = repository / "reference"
    variants = repository / "tests" / "variants"
    if not reference.is_dir():
        reference = None
        if not solutions:
            raise UsageError(
                f"no reference solutions at {repository / 'reference'} (an installed dlgrade "
                "ships none: they are in the repository); pass --solutions DIR, a folder of "
                "correct activity_X_YY.py files (repeatable)"
            )
    if not variants.is_dir():
        variants = None
    if no_mutants:
        mutants = None
    elif mutants is None:
        default = repository / "tests" / "mutants"
        mutants = default if default.is_dir() and reference is not None else None
    elif reference is None:
        raise UsageError(
            f"--mutants {mutants}: mutants edit the reference, and there is none at "
            f"{repository / 'reference'}; pass --no-mutants"
        )
    elif not Path(mutants).is_dir():
        raise UsageError(f"--mutants {mutants}: not a folder of *.mutant files")
    seed_list = list(range(first_seed, first_seed + seeds))
    plans = []
    for activity in chosen:
        try:
            students = students_for(
                activity,
                reference=reference,
                variants=variants,
                solutions=list(solutions),
                mutants=mutants,
            )
        except MutantError as exc:
            raise UsageError(str(exc)) from None
        if not any(s.correct for s in students):
            print(f"calibrate {activity}: no correct solution holds it; skipped", file=stream)
            continue
        plan = Plan(activity, tier, seed_list, rubric_root, Path(out), jobs, students)
        try:
            build_class(plan)
        except MutantError as exc:
            raise UsageError(str(exc)) from None
        plans.append(plan)
    if not plans:
        raise UsageError("nothing to calibrate: no correct solution for the chosen activities")

    steps = [(p, s) for p in plans for s in seed_list]
    started, graded_times = time.monotonic(), []
    try:
        for index, (plan, seed) in enumerate(steps, 1):
            correct = sum(s.correct for s in plan.students)
            where = (
                f"calibrate {plan.activity} {tier}: seed {seed} ({index}/{len(steps)}; "
                f"{correct} correct, {len(plan.students) - correct} mutants)"
            )
            if seed_done(plan, seed):
                print(f"{where}: graded before, kept", file=stream, flush=True)
                continue
            began = time.monotonic()
            grade_seed(plan, seed)
            graded_times.append(time.monotonic() - began)
            left = sum(1 for p, s in steps[index:] if not seed_done(p, s))
            eta = statistics.mean(graded_times) * left
            print(
                f"{where}: {_duration(graded_times[-1])}; elapsed "
                f"{_duration(time.monotonic() - started)}, ETA {_duration(eta)}",
                file=stream,
                flush=True,
            )
    except KeyboardInterrupt:
        print(
            "calibrate: interrupted; the seeds graded so far are kept under "
            f"{Path(out) / 'runs'}: run the same command again to go on",
            file=stream,
        )
        return ExitCode.INTERRUPTED

    path = rubric_root / FILE
    calibration = read(path)
    for plan in plans:
        calibration = merge(calibration, plan.activity, summarise(plan, seed_list))
    write(path, calibration)
    print(f"calibrate: wrote {path}", file=stream)
    if table_path is not None:
        write_atomic(Path(table_path), table(calibration))
        print(f"calibrate: wrote {table_path}", file=stream)
    return ExitCode.OK


def table_only(rubric_root: Path, table_path: Path) -> int:
    path = rubric_root / FILE
    if not path.is_file():
        raise UsageError(f"no calibration at {path}; run `dlgrade calibrate` first")
    write_atomic(Path(table_path), table(read(path)))
    return ExitCode.OK
