"""The rubric's view of one student's folder: remote modules, handles, exported models."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from dlgrade.errors import CallTimeout
from dlgrade.notebook import module_path
from dlgrade.protocol import Handle
from dlgrade.rubric import ACTIVITIES
from dlgrade.sandbox import WorkerSession


class BuiltModel(NamedTuple):
    """A model built by the submission: its handle, the trusted copy, and the call made."""

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
        return self.module(ACTIVITIES[number][0])

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
        with self.budgeted() as limit:
            return self.session.export_model(handle, timeout=limit, unbuilt_shape=unbuilt_shape)

    def build_model(
        self, function: RemoteFunction, /, *, unbuilt_shape=None, **kwargs: Any
    ) -> BuiltModel:
        """Call a model-building function of the submission and load what it built.

        ``submission.build_model(student.build_model, input_dim=30)`` returns the handle
        (to train it in the worker), the trusted copy (to inspect) and ``"build_model(
        input_dim=30)"`` for messages; anything but a model fails the check.
        ``unbuilt_shape``: the activity's input shape, to build a model Keras 3 left unbuilt
        (the book's Sequential without ``Input``); see :meth:`load_model`.
        """
        __tracebackhide__ = True
        from dlgrade import expect

        call = f"{function._name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        handle = expect.handle(function(**kwargs), call)
        return BuiltModel(handle, self.load_model(handle, unbuilt_shape=unbuilt_shape), call)

    def inspect_model(self, function: RemoteFunction, /, *, unbuilt_shape=None, **kwargs: Any):
        """The trusted copy of what ``function(**kwargs)`` builds, and the call, for checks
        that only *look* at the model (architecture, compile settings, parameter counts).

        The call is made once per submission and its result shared by every check that
        inspects the same call: the copy is a snapshot taken right after the build, and the
        handle is never handed out, so no check can train or change what another inspects.
        A failure that is the student's (an exception, a wrong type, a timeout charged to
        them) is shared the same way; anything else is not remembered.
        """
        __tracebackhide__ = True
        from dlgrade.errors import SubmissionError

        key = (function._module, function._name, repr(sorted(kwargs.items())), repr(unbuilt_shape))
        if key not in self._inspected:
            try:
                built = self.build_model(function, unbuilt_shape=unbuilt_shape, **kwargs)
            except SubmissionError as exc:
                self._inspected[key] = exc
                raise
            self.session.release(built.handle)
            self._inspected[key] = (built.model, built.call)
        found = self._inspected[key]
        if isinstance(found, BaseException):
            raise found.with_traceback(None)
        return found

    def load_model(self, handle: Handle, *, unbuilt_shape=None):
        """Export the model behind ``handle`` and load it here with ``safe_mode=True``.

        A model Keras left unbuilt is built in the worker with ``unbuilt_shape`` first (the
        grader's choice: the book's 6.01 model is correct and builds when it first sees
        data); without a shape, the check fails telling the student to add ``keras.Input``.
        """
        __tracebackhide__ = True
        from dlgrade import models

        return models.load(self.export_model(handle, unbuilt_shape=unbuilt_shape))

    def feed(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """One of the grader's own inputs, built in the worker (see :mod:`dlgrade.feeds`):
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
        from dlgrade.protocol import ProtocolError, read_word2vec_text

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
        inbox = self.session.exchange_dir / "inbox"
        inbox.mkdir(exist_ok=True)
        target = inbox / Path(source).name
        shutil.copyfile(source, target)
        return target
