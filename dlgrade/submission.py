"""The rubric's view of one student's folder: remote modules, handles, exported models."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from dlgrade.activities import module_name
from dlgrade.errors import CallTimeout
from dlgrade.sandbox import WorkerSession
from dlgrade.sandbox.notebook import module_path
from dlgrade.sandbox.protocol import Handle


class BuiltModel(NamedTuple):
    """A model built by the submission: its handle (in the worker), what the model inspector
    read of it (:class:`dlgrade.models.InspectedModel`), and the call made."""

    handle: Handle
    model: Any
    call: str


#: after an activity's budget is spent, each call still gets this long (fast functions of
#: other checks still run and are graded; only slow ones are cut short)
BUDGET_FLOOR_SECONDS = 10.0
BUDGET_MESSAGE = (
    " This activity's time budget ({budget:g} s of your code's time per grading, for all of "
    "its checks) was spent: your code had used {spent:.0f} s in earlier checks, so this call "
    "had only {limit:g} s."
)


class _Runner:
    """Runs an inspected model of this submission in its inspector, seeded for the running
    check and under the check's call limit."""

    def __init__(self, submission: Submission, handle: Handle):
        self._submission = submission
        self._handle = handle

    def __call__(self, what: str, args: tuple, kwargs: dict) -> Any:
        submission = self._submission
        inspector = submission._ready_inspector()
        limit = submission.timeout or submission.session.limits.call_timeout
        return inspector.run(what, self._handle, args, kwargs, timeout=limit)


class RemoteFunction:
    """Calls one function of the submission in the worker; arguments and result are data."""

    def __init__(self, submission: Submission, module: str, name: str):
        self._submission = submission
        self._module = module
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        submission = self._submission
        with submission.budgeted() as limit:
            return submission.session.call(self._module, self._name, args, kwargs, timeout=limit)

    def __repr__(self) -> str:
        return f"<remote {self._module}.{self._name}()>"


class RemoteModule:
    """``submission.module("activity_1_01").solve(...)`` runs ``solve`` in the worker."""

    def __init__(self, submission: Submission, name: str):
        self._submission = submission
        self._name = name

    def __getattr__(self, name: str) -> RemoteFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        return RemoteFunction(self._submission, self._name, name)

    def __repr__(self) -> str:
        return f"<remote module {self._name}>"


class Submission:
    """One student's folder, graded through its worker. Handed to checks as a fixture."""

    def __init__(self, path: Path, session: WorkerSession):
        self.path = Path(path)
        self.session = session
        self.timeout: float | None = None  # set per check by the plugin
        #: the running check's activity and that activity's budget (seconds of the student's
        #: time for all of its checks; None: no budget), set per check by the plugin
        self.activity_now: str | None = None
        self.budget: float | None = None
        self._spent: dict[str, float] = {}
        self._mark = 0.0
        self._inspected: dict[tuple, Any] = {}  # inspect_model's results, per call
        self._inspector = None  # the student's model inspector, started when first needed

    def begin_check(self, activity: str, timeout: float, budget: float | None) -> None:
        """Before each check: its per-call limit and its activity's budget."""
        self._settle()
        self.activity_now, self.timeout, self.budget = activity, timeout, budget

    def _settle(self) -> None:
        """Book the student's time since the last mark to the activity that used it."""
        used = self.session.student_seconds - self._mark
        if self.activity_now is not None:
            self._spent[self.activity_now] = self._spent.get(self.activity_now, 0.0) + used
        self._mark = self.session.student_seconds

    def spent(self, activity: str | None = None) -> float:
        """The student's time so far in ``activity``'s checks (the running one's default)."""
        activity = activity or self.activity_now
        running = self.session.student_seconds - self._mark if activity == self.activity_now else 0
        return self._spent.get(activity, 0.0) + running

    def call_limit(self) -> float | None:
        """This call's limit: the check's, or less when the activity's budget is nearly spent
        (never less than ``BUDGET_FLOOR_SECONDS``)."""
        if self.timeout is None or self.budget is None:
            return self.timeout
        return min(self.timeout, max(self.budget - self.spent(), BUDGET_FLOOR_SECONDS))

    @contextlib.contextmanager
    def budgeted(self):
        """Run one call under :meth:`call_limit`; a timeout the budget caused says so."""
        limit = self.call_limit()
        try:
            yield limit
        except CallTimeout as exc:
            if exc.reason == "timeout" and limit is not None and limit < (self.timeout or 0):
                spent = self.spent() - limit
                exc.args = (
                    str(exc) + BUDGET_MESSAGE.format(budget=self.budget, spent=spent, limit=limit),
                )
                exc.reason = "time_budget"
            raise

    def module(self, name: str) -> RemoteModule:
        return RemoteModule(self, name)

    def activity(self, number: str) -> RemoteModule:
        return self.module(module_name(number))

    def has_module(self, name: str) -> bool:
        return module_path(self.path, name) is not None

    def call_method(self, handle: Handle, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on the object behind ``handle`` (in the worker)."""
        __tracebackhide__ = True
        with self.budgeted() as limit:
            return self.session.call_method(handle, method, args, kwargs, timeout=limit)

    def export_model(self, handle: Handle, *, unbuilt_shape=None) -> Path:
        """Save the model behind ``handle`` as ``.keras`` and return the trusted copy."""
        __tracebackhide__ = True
        return self._export(handle, unbuilt_shape).path

    def _export(self, handle: Handle, unbuilt_shape):
        """:meth:`export_model`, with whether the worker traced a subclassed model."""
        __tracebackhide__ = True
        with self.budgeted() as limit:
            return self.session.export(handle, timeout=limit, unbuilt_shape=unbuilt_shape)

    def build_model(
        self, function: RemoteFunction, /, *, unbuilt_shape=None, **kwargs: Any
    ) -> BuiltModel:
        """Call a model-building function of the submission and inspect what it built.

        ``submission.build_model(student.build_model, input_dim=30)`` returns the handle
        (to train it in the worker), the inspected model (to look at, and to run on the
        grader's data in the model inspector) and ``"build_model(input_dim=30)"`` for
        messages; anything but a model fails the check.
        ``unbuilt_shape``: the activity's input shape, to build a model Keras 3 left unbuilt
        (the book's Sequential without ``Input``); see :meth:`load_model`.
        """
        __tracebackhide__ = True
        from dlgrade import expect

        call = f"{function._name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        self.model_inspector().start()  # its TensorFlow loads while the student's code runs
        handle = expect.handle(call, function(**kwargs))
        return BuiltModel(handle, self.load_model(handle, unbuilt_shape=unbuilt_shape), call)

    def inspect_model(self, function: RemoteFunction, /, *, unbuilt_shape=None, **kwargs: Any):
        """What ``function(**kwargs)`` builds, as the inspector read it, and the call, for
        checks that only *look* at the model (architecture, compile settings, parameter
        counts).

        The call is made once per submission and its result shared by every check that
        inspects the same call: the description is a snapshot taken right after the build
        (it cannot be run or trained), and the handle is never handed out, so no check can
        train or change what another inspects. A failure that is the student's (an
        exception, a wrong type, a timeout charged to them, a model the inspector cannot
        load) is shared the same way; anything else is not remembered.
        """
        __tracebackhide__ = True
        from dlgrade import expect
        from dlgrade.errors import SubmissionError

        key = (function._module, function._name, repr(sorted(kwargs.items())), repr(unbuilt_shape))
        if key not in self._inspected:
            call = f"{function._name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
            try:
                self.model_inspector().start()
                handle = expect.handle(call, function(**kwargs))
                model = self._inspect(handle, unbuilt_shape=unbuilt_shape, snapshot=True)
            except SubmissionError as exc:
                self._inspected[key] = exc
                raise
            self.session.release(handle)
            self._inspected[key] = (model, call)
        found = self._inspected[key]
        if isinstance(found, BaseException):
            raise found.with_traceback(None)
        return found

    def load_model(self, handle: Handle, *, unbuilt_shape=None):
        """Export the model behind ``handle`` and have the model inspector load it
        (``safe_mode=True``) and describe it: an :class:`~dlgrade.models.InspectedModel`,
        whose ``predict``/``evaluate``/``fit`` run in the inspector on the grader's data.

        A model Keras left unbuilt is built in the worker with ``unbuilt_shape`` first (the
        grader's choice: the book's 6.01 model is correct and builds when it first sees
        data); without a shape, the check fails telling the student to add ``keras.Input``.
        """
        __tracebackhide__ = True
        return self._inspect(handle, unbuilt_shape=unbuilt_shape, snapshot=False)

    def _inspect(self, handle: Handle, *, unbuilt_shape, snapshot: bool):
        from dlgrade import models

        self.model_inspector().start()  # its TensorFlow loads while the worker saves
        exported = self._export(handle, unbuilt_shape)
        path = exported.path
        check = None
        if exported.traced is not None:
            check = lambda found, model: self._probe_traced(handle, found, model, exported.traced)  # noqa: E731
        try:
            inspector = self._ready_inspector()
            runner = None if snapshot else (lambda found: _Runner(self, found))
            return models.load(path, inspector, runner=runner, check=check)
        finally:
            path.unlink(missing_ok=True)

    def _probe_traced(self, handle: Handle, found, model, cls: str):
        """A subclassed model the worker traced (:mod:`dlgrade.tracing`): the functional
        model it saved must compute what the student's model computes, on inputs the
        grader chose — the trace is the worker's word, this is the check on it. The
        inspected model keeps the student's class name."""
        import dataclasses

        from dlgrade import models
        from dlgrade.errors import SubmissionError

        x = models.probe_inputs(model, models.check_seed())
        traced = _Runner(self, found)("predict", (x,), {"batch_size": models.PROBE_BATCH})
        with self.budgeted() as limit:
            student = self.session.call_method(
                handle, "predict", (x,), {"batch_size": models.PROBE_BATCH, "verbose": 0},
                timeout=limit,
            )
        problem = models.compare_outputs(student, traced)
        if problem is not None:
            raise SubmissionError(
                models.TRACED_MISMATCH_MESSAGE.format(cls=cls, n=len(x), detail=problem),
                reason="bad_model",
            )
        return dataclasses.replace(model, class_name=cls)

    def model_inspector(self):
        """This student's model inspector (:class:`dlgrade.sandbox.inspector.ModelInspector`):
        one per student, started when a check first needs it, closed with the session."""
        if self._inspector is None:
            from dlgrade.sandbox.inspector import ModelInspector

            self._inspector = ModelInspector.for_session(self.session)
        return self._inspector

    def _ready_inspector(self):
        """The inspector, seeded for the running check (as the worker is)."""
        from dlgrade import models

        inspector = self.model_inspector()
        inspector.seed(models.check_seed(), self.session.check)
        return inspector

    def feed(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """One of the grader's own inputs, built in the worker (see :mod:`dlgrade.sandbox.feeds`):
        ``submission.feed("image_batches", x, y, batch_size=32)`` returns a handle to pass
        to the student's function under test."""
        __tracebackhide__ = True
        return self.session.feed(name, args, kwargs, timeout=self.timeout)

    def grader_model(self, spec, input_shape, compiled=None) -> Handle:
        """The book's model built by the grader in the worker from a rubric's layer spec
        (:class:`dlgrade.models.Layer` list) and compile settings (:class:`~dlgrade.models.
        Compiled`), to train with the student's ``train()`` alone."""
        __tracebackhide__ = True
        layers = [[layer.kind, layer.settings] for layer in spec]
        return self.feed(
            "sequential", layers, list(input_shape), compiled.as_feed() if compiled else None
        )

    def take(self, handle: Handle, n: int) -> list:
        """The first ``n`` items of an iterable in the worker (batches of a tf.data.Dataset)."""
        __tracebackhide__ = True
        with self.budgeted() as limit:
            return self.session.take(handle, n, timeout=limit)

    @property
    def keras_home(self) -> Path:
        """The worker's KERAS_HOME (the files Keras's dataset loaders will read)."""
        return self.session.keras_home

    def attributes(self, handle: Handle, *names: str) -> dict:
        """Attributes of the object behind ``handle`` (dotted names), as data or handles."""
        __tracebackhide__ = True
        with self.budgeted() as limit:
            return self.session.attributes(handle, list(names), timeout=limit)

    def export_vectors(self, handle: Handle) -> Path:
        """Save word vectors (a Word2Vec model's ``wv`` or KeyedVectors) as word2vec text.

        The file is plain text (``word v1 … vn`` per line), so reading it back runs nothing.
        """
        __tracebackhide__ = True
        name = f"vectors-{handle.generation}-{handle.id}.txt"
        inside = str(self.session.exchange_dir / name)
        with self.budgeted() as limit:
            self.session.call_method(
                handle, "save_word2vec_format", (inside,), {"binary": False}, timeout=limit
            )
        return self.session.take_file(name, name, max_bytes=512 * 2**20)

    def vectors(self, handle: Handle) -> dict:
        """The word vectors behind ``handle`` (word → float64 array), parsed here as data.

        A file that is not well-formed word2vec text is the submission's: the check fails
        with reason ``bad_value`` and what was wrong, never as a grader error.
        """
        __tracebackhide__ = True
        from dlgrade.errors import SubmissionError
        from dlgrade.sandbox.protocol import ProtocolError, read_word2vec_text

        path = self.export_vectors(handle)
        try:
            return read_word2vec_text(path)
        except ProtocolError as exc:
            raise SubmissionError(
                f"the word vectors your code produced could not be read back as word2vec "
                f"text: {exc}",
                reason="bad_value",
            ) from None

    def share(self, source: Path) -> Path:
        """Copy a trusted file where the worker can read it; return the path it sees."""
        from dlgrade import safeio

        inbox = self.session.exchange_dir / "inbox"
        inbox.mkdir(exist_ok=True)
        name = safeio.check_name(Path(source).name)
        # The inbox is the grader's, but it sits in the worker's exchange folder: nothing
        # there is followed, and what is under the name is replaced, never written through.
        with safeio.open_dir(inbox) as dir_fd, open(source, "rb") as src:
            safeio.remove(dir_fd, name)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return inbox / name
