"""The worker: the only process where a submission's code runs.

Started by :mod:`dlgrade.sandbox` (through :mod:`dlgrade.sandbox.jail` where the machine allows) as
``python -P -s -B -m dlgrade.sandbox.worker REQ_FD REPLY_FD EXCHANGE [RLIMITS_JSON]`` with the
scratch copy of the submission as its working directory; ``RLIMITS_JSON`` is given only
when there is no jail, and the worker then applies the limits to itself. It imports the
student's modules, calls what the rubric asks for and answers with data (see
:mod:`dlgrade.sandbox.protocol`). Nothing it says is trusted: the rubric validates every value it
gets back.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from dlgrade.sandbox import jail, notebook
from dlgrade.sandbox.notebook import PROGRESS_FILE as NOTEBOOK_PROGRESS
from dlgrade.sandbox.protocol import (
    ChannelClosed,
    Codec,
    ProtocolError,
    output_mark,
    recv_message,
    send_message,
)

#: added to a student's EPERM: in the jail it is most often the syscall filter's answer
SYSCALL_DENIED_MESSAGE = (
    "If this came from a system call: the grader's sandbox does not allow some system calls "
    "(ptrace, keyctl, mount, unshare, bpf, perf_event_open, io_uring, …); your code must not "
    "need them."
)
_MODULE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class _WorkerCodec(Codec):
    """Worker-side codec: handles coming back from the rubric resolve to live objects."""

    def __init__(self, exchange_dir: Path, objects: dict[int, Any]):
        super().__init__(exchange_dir, side="w", make_handle=self._make_handle)
        self.objects = objects
        self._next_id = 0

    def encode(self, value: Any) -> Any:
        array = _as_array(value)
        return super().encode(value if array is None else array)

    def _make_handle(self, value: Any) -> dict:
        self._next_id += 1
        self.objects[self._next_id] = value
        kind = type(value)
        return {"__handle__": self._next_id, "type": f"{kind.__module__}.{kind.__qualname__}"}

    def _decode_handle(self, value: dict) -> Any:
        try:
            return self.objects[value["__handle__"]]
        except KeyError:
            raise ProtocolError(f"no object behind handle #{value['__handle__']}") from None


def _as_array(value: Any) -> np.ndarray | None:
    """A pandas DataFrame, Series or Index of numbers, as the array it holds (else None).

    The book returns ``df.iloc[:, :-1]`` as features and Keras trains on it: it is data, so
    it crosses as data (an ``.npy`` file) rather than as a handle the rubric cannot read.
    """
    module = type(value).__module__
    if module != "pandas" and not module.startswith("pandas."):
        return None
    to_numpy = getattr(value, "to_numpy", None)
    if not callable(to_numpy):
        return None
    try:
        array = np.asarray(to_numpy())
    except Exception:  # noqa: BLE001 - not convertible: it stays a handle
        return None
    return array if array.dtype.kind in "biuf" else None


def _is_keras_model(value: Any) -> bool:
    """A ``keras.Model`` (Keras already imported: a model exists only once it is)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.Model)


class _Failure(Exception):
    """An answer of ``ok: false`` with a kind the trusted side maps to an outcome."""

    def __init__(self, kind: str, message: str, student_traceback: str = "", **extra: Any):
        super().__init__(message)
        self.payload = {"kind": kind, "message": message, "traceback": student_traceback, **extra}


class Worker:
    def __init__(self, exchange_dir: Path, submission_dir: Path):
        self.submission_dir = submission_dir
        self.exchange_dir = exchange_dir
        self.notes: list[str] = []  # for the report, once: a notebook's magics, slow cells
        self.objects: dict[int, Any] = {}
        self.codec = _WorkerCodec(exchange_dir, self.objects)
        self.modules: dict[str, Any] = {}
        self.pid = os.getpid()  # a forked copy of the worker must never answer

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        method = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if method is None:
            return {"ok": False, "error": {"kind": "harness", "message": f"unknown op {op!r}"}}
        began = time.perf_counter()
        try:
            value = method(request)
        except _Failure as failure:
            # Raised while handling the student's exception: that one says if a limit hit.
            limit = limit_reason(failure.__context__)
            if limit is not None:
                failure.payload["kind"] = limit
            return {"ok": False, "error": failure.payload}
        except ProtocolError as exc:
            return {"ok": False, "error": {"kind": "protocol", "message": str(exc)}}
        try:
            # seconds: the op's own time in this process (statistics for benchmarks only)
            seconds = round(time.perf_counter() - began, 6)
            return {"ok": True, "value": self.codec.encode(value), "seconds": seconds}
        except (OSError, ProtocolError) as exc:
            return {
                "ok": False,
                "error": {
                    "kind": "unencodable",
                    "message": f"the value returned to the grader could not be sent: {exc}",
                },
            }

    def op_hello(self, request: dict) -> Any:
        return {"pid": os.getpid(), "python": sys.version.split()[0]}

    def op_preload(self, request: dict) -> Any:
        """Import heavy libraries (TensorFlow) before the first check needs them."""
        began = time.monotonic()
        loaded = []
        for name in request.get("modules", []):
            try:
                importlib.import_module(name)
                loaded.append(name)
            except Exception:  # the submission's own import will report it properly
                pass
        answer = {"loaded": loaded, "seconds": round(time.monotonic() - began, 3)}
        if "tensorflow" in sys.modules and os.environ.get("CUDA_VISIBLE_DEVICES") != "-1":
            # A GPU worker says which GPUs TensorFlow found, before any student code runs:
            # a jail that hid the device or the driver shows up here, not as a slow check.
            try:
                found = sys.modules["tensorflow"].config.list_physical_devices("GPU")
                answer["gpus"] = [device.name for device in found]
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                answer["gpus"] = []
                answer["gpu_error"] = f"{type(exc).__name__}: {exc}"[:300]
        answer["seconds"] = round(time.monotonic() - began, 3)
        return answer

    def op_seed(self, request: dict) -> Any:
        seed = int(request["seed"])
        random.seed(seed)
        np.random.seed(seed % 2**32)
        if "keras" in sys.modules:
            sys.modules["keras"].utils.set_random_seed(seed)
        elif "tensorflow" in sys.modules:
            sys.modules["tensorflow"].random.set_seed(seed)
        return seed

    def op_import(self, request: dict) -> Any:
        """Import a module of the submission; the answer carries the notes the report shows
        once (a notebook's magics that did not run, its slow cells)."""
        self._module(request["module"])
        return {"notes": list(self.notes)}

    def op_call(self, request: dict) -> Any:
        module = self._module(request["module"])
        name = request["function"]
        function = getattr(module, name, None)
        if function is None or not callable(function):
            raise _Failure(
                "missing_function",
                f"{request['module']}.py has no function {name}(); define it with the "
                "signature from the submission contract (run `dlgrade new` for a skeleton)",
            )
        return self._invoke(function, request, f"{request['module']}.{name}")

    def op_call_method(self, request: dict) -> Any:
        target = self.codec.decode({"__handle__": request["handle"]})
        method = getattr(target, request["method"], None)
        if method is None or not callable(method):
            raise _Failure(
                "missing_function",
                f"the {type(target).__name__} returned by your code has no method "
                f"{request['method']}()",
            )
        return self._invoke(method, request, f"{type(target).__name__}.{request['method']}")

    def op_export_model(self, request: dict) -> Any:
        model = self.codec.decode({"__handle__": request["handle"]})
        save = getattr(model, "save", None)
        if save is None:
            raise _Failure(
                "wrong_type",
                f"expected a Keras model, got a {type(model).__module__}."
                f"{type(model).__qualname__}",
            )
        if getattr(model, "built", True) is False:
            self._build(model, request.get("unbuilt_shape"))
        traced = None
        if _is_keras_model(model):
            from dlgrade import tracing

            if tracing.is_subclassed(model):
                traced = type(model).__name__[:200]
                try:
                    shape = tracing.input_shape(model, request.get("unbuilt_shape"))
                    model = tracing.trace(model, shape)
                except tracing.TraceError as exc:
                    raise _Failure("untraceable_model", str(exc), self._student_traceback(exc))
                save = model.save
        name = f"model-{request['handle']}-{os.getpid()}.keras"
        try:
            save(str(self.codec.exchange_dir / name))
        except BaseException as exc:  # noqa: BLE001 - any failure here is the model's
            raise _Failure(
                "export_failed",
                f"the model could not be saved as .keras: {type(exc).__name__}: {exc}",
                self._student_traceback(exc),
            )
        return name if traced is None else {"file": name, "traced": traced}

    def _build(self, model: Any, shape: Any) -> None:
        """Build a model Keras 3 left unbuilt (a Sequential with no ``Input`` that has not
        seen data yet, as the book's 6.01 writes it) with the activity's input shape."""
        fix = (
            "Keras 3 builds a Sequential model only when it first sees data, so it has no "
            "weights yet (0 parameters); start it with keras.Input(shape=...)"
        )
        if not isinstance(shape, list) or not all(d is None or type(d) is int for d in shape):
            raise _Failure("unbuilt_model", f"the model your code returned is not built: {fix}")
        try:
            model.build(tuple(shape))
        except BaseException as exc:  # noqa: BLE001 - the student's model refused
            raise _Failure(
                "unbuilt_model",
                f"the model your code returned is not built, and building it for inputs of "
                f"shape {tuple(shape)} raised {type(exc).__name__}: {exc}. {fix}",
                self._student_traceback(exc),
            )

    def op_feed(self, request: dict) -> Any:
        """Build one of the grader's inputs (:mod:`dlgrade.sandbox.feeds`) and return it."""
        from dlgrade.sandbox.feeds import FEEDS

        factory = FEEDS.get(request.get("name"))
        if factory is None:
            raise ProtocolError(f"unknown feed {request.get('name')!r}")
        args = self.codec.decode(request.get("args", []))
        kwargs = self.codec.decode(request.get("kwargs", {"__dict__": {}}))
        return factory(*args, **kwargs)

    def op_inspect(self, request: dict) -> Any:
        """The model inspector's work (:data:`dlgrade.sandbox.feeds.INSPECTIONS`): load a saved
        model from the inbox, describe it, run it on the grader's data. Every failure is
        the saved model's, told as its kind (``bad_model``, ``unsafe_model``)."""
        from dlgrade.sandbox.feeds import INSPECTIONS, InspectionFailed

        action = INSPECTIONS.get(request.get("name"))
        if action is None:
            raise ProtocolError(f"unknown inspection {request.get('name')!r}")
        args = self.codec.decode(request.get("args", []))
        kwargs = self.codec.decode(request.get("kwargs", {"__dict__": {}}))
        try:
            return action(*args, **kwargs)
        except InspectionFailed as exc:
            raise _Failure(exc.kind, str(exc))
        except MemoryError:
            raise _Failure("memory_limit", "the model did not fit in the memory limit")
        except Exception as exc:  # noqa: BLE001 - a hostile archive may make anything raise
            raise _Failure("bad_model", f"{type(exc).__name__}: {str(exc)[:2000]}")

    def op_take(self, request: dict) -> Any:
        """The first ``n`` items of an iterable (a tf.data.Dataset, a generator...)."""
        source = self.codec.decode({"__handle__": request["handle"]})
        items = []
        try:
            iterator = iter(source)
            for _ in range(int(request["n"])):
                items.append(next(iterator))
        except StopIteration:
            pass
        except BaseException as exc:  # noqa: BLE001 - the student's iterable failed
            raise _Failure(
                "student_exception",
                f"iterating the {type(source).__name__} returned by your code raised "
                f"{type(exc).__name__}: {exc}",
                self._student_traceback(exc),
            )
        return items

    def op_attributes(self, request: dict) -> Any:
        """Read (dotted) attributes of a handle's object: data, or handles to objects."""
        target = self.codec.decode({"__handle__": request["handle"]})
        values = {}
        for dotted in request.get("names", []):
            value = target
            try:
                for part in str(dotted).split("."):
                    if part.startswith("_"):
                        raise AttributeError(part)
                    value = getattr(value, part)
            except Exception as exc:  # noqa: BLE001 - reported as missing, not as a crash
                raise _Failure(
                    "missing_attribute",
                    f"the {type(target).__name__} returned by your code has no attribute "
                    f"{dotted} ({type(exc).__name__})",
                )
            values[str(dotted)] = value
        return values

    def op_release(self, request: dict) -> Any:
        for handle_id in request.get("handles", []):
            self.objects.pop(handle_id, None)
        return True

    # -- student code --------------------------------------------------------------------

    def _module(self, name: Any) -> Any:
        if not isinstance(name, str) or not set(name) <= _MODULE_NAME_CHARS:
            raise ProtocolError(f"bad module name {name!r}")
        if name in self.modules:
            return self.modules[name]
        both = notebook.ambiguity(self.submission_dir, name)
        if both:
            raise _Failure("ambiguous_module", both)
        path = notebook.module_path(self.submission_dir, name)
        if path is None:
            raise _Failure(
                "missing_module",
                f"the submission has no {name}.py (or {name}.ipynb); add it (run `dlgrade new` "
                "for a skeleton)",
            )
        filename = path.name
        try:
            if path.suffix == ".ipynb":
                loaded = notebook.load(name, path, self.exchange_dir / NOTEBOOK_PROGRESS)
                module = loaded.module
                self.notes += [n for n in loaded.notes(name) if n not in self.notes]
            else:
                module = importlib.import_module(name)
        except notebook.NotebookError as exc:
            raise _Failure("bad_notebook", str(exc))
        except SyntaxError as exc:
            where = notebook.describe_location(exc.filename or "", exc.lineno) or (
                f"{Path(exc.filename or filename).name}, line {exc.lineno}"
            )
            raise _Failure(
                "syntax_error",
                f"{filename} does not compile: {exc.msg} ({where}); fix that line (or the "
                "one before it, where Python's reading went wrong)",
                self._syntax_error(exc),
            )
        except SystemExit as exc:
            raise _Failure(
                "exit",
                f"{filename} called sys.exit({exc.code!r}) while being imported; "
                "remove it (or guard it with `if __name__ == '__main__':`)",
            )
        except NotImplementedError as exc:
            raise _Failure("not_implemented", str(exc) or f"{name} is not implemented yet")
        except ModuleNotFoundError as exc:
            own = f", or add {exc.name}.py beside it if it is a module of your own"
            raise _Failure(
                "import_error",
                f"{filename} imports {exc.name or 'a module'}, which the grading environment "
                f"does not have (ModuleNotFoundError: {exc}); remove that import"
                + (own if exc.name and "." not in exc.name else ""),
                self._student_traceback(exc),
            )
        except BaseException as exc:  # noqa: BLE001 - any failure at import is the student's
            raise _Failure(
                "import_error",
                f"importing {filename} raised {type(exc).__name__}: {exc}{_denied(exc)}",
                self._student_traceback(exc),
            )
        self.modules[name] = module
        return module

    def _syntax_error(self, exc: SyntaxError) -> str:
        where = notebook.describe_location(exc.filename or "", exc.lineno)
        if where is None:
            if exc.filename:  # the scratch copy's path means nothing to the student
                exc.filename = os.path.relpath(exc.filename, self.submission_dir)
            return "".join(traceback.format_exception_only(type(exc), exc))
        text = (exc.text or "").rstrip("\n")
        caret = " " * max(0, (exc.offset or 1) - 1 - (len(text) - len(text.lstrip()))) + "^"
        return f"  {where}\n    {text.strip()}\n    {caret}\nSyntaxError: {exc.msg}\n"

    def _invoke(self, function: Any, request: dict, label: str) -> Any:
        args = self.codec.decode(request.get("args", []))
        kwargs = self.codec.decode(request.get("kwargs", {"__dict__": {}}))
        try:
            try:
                result = function(*args, **kwargs)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a process the student forked came back here: not ours
        except NotImplementedError as exc:
            raise _Failure("not_implemented", str(exc) or f"{label} is not implemented yet")
        except SystemExit as exc:
            raise _Failure(
                "exit",
                f"{label}() called sys.exit({exc.code!r}); return a value instead",
                self._student_traceback(exc),
            )
        except BaseException as exc:  # noqa: BLE001 - the student's exception, reported as such
            raise _Failure(
                "student_exception",
                f"{label}() raised {type(exc).__name__}: {exc}{_denied(exc)}",
                self._student_traceback(exc),
                exception_type=type(exc).__name__,
            )
        return result

    def _student_traceback(self, exc: BaseException) -> str:
        """The traceback with the harness's frames removed: the student sees their own lines."""
        root = str(self.submission_dir)
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename.startswith(root)
        ]
        lines = ["Traceback (your code, most recent call last):\n"]
        for frame in frames:
            cell = notebook.describe_location(frame.filename, frame.lineno)
            if cell is None:
                frame.filename = os.path.relpath(frame.filename, root)
                lines += traceback.format_list([frame])
            else:  # a notebook's cell: its number and first line, the line within it
                lines.append(f"  {cell}, in {frame.name}\n")
                if frame.line:
                    lines.append(f"    {frame.line.strip()}\n")
        lines += traceback.format_exception_only(type(exc), exc)
        return "".join(lines)


def _denied(exc: BaseException) -> str:
    """SYSCALL_DENIED_MESSAGE for an "Operation not permitted", after a space; else ""."""
    if isinstance(exc, OSError) and exc.errno == errno.EPERM:
        return " " + SYSCALL_DENIED_MESSAGE
    return ""


def limit_reason(exc: BaseException | None) -> str | None:
    """The resource limit behind an exception (or its causes), if it is one of ours."""
    for _ in range(8):
        if exc is None:
            return None
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
            return "memory_limit"
        if isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
            return "process_limit"  # fork() or clone() refused: RLIMIT_NPROC
        if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
            return "process_limit"
        if isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
            return "disk_limit"
        exc = exc.__cause__ or exc.__context__
    return None


def _mark_output(served: int) -> None:
    """Flush the student's output and mark where this request's output ends.

    The trusted side waits for the mark before it reads a check's output, so nothing
    printed before a reply is lost in the pipe.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the student may have replaced or closed it
            pass
    try:
        os.write(1, output_mark(served))
    except OSError:
        pass


def main(argv: list[str]) -> int:
    request_fd, reply_fd = int(argv[1]), int(argv[2])
    exchange_dir = Path(argv[3])
    if len(argv) > 4:  # no jail on this machine: limit ourselves before any student import
        limits = jail.Rlimits(**json.loads(argv[4]))
        # RLIMIT_NPROC counts all of our uid's processes: root is exempt, others share it.
        already = jail.count_tasks(os.getuid()) if os.getuid() != 0 else 0
        jail.set_limits(limits, processes_already=already)
    submission_dir = Path.cwd().resolve()
    sys.path.append(str(submission_dir))
    sys.argv = ["dlgrade-worker"]
    worker = Worker(exchange_dir, submission_dir)
    served = 0
    while True:
        try:
            request = recv_message(request_fd)
        except (ChannelClosed, ProtocolError):
            return 0
        served += 1
        try:
            reply = worker.handle(request)
        except BaseException as exc:  # noqa: BLE001 - a bug here must still be answered
            reply = {
                "ok": False,
                "error": {
                    "kind": "harness",
                    "message": f"worker bug: {type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                },
            }
        if os.getpid() != worker.pid:
            os._exit(0)  # a process the student forked came back here: it must not answer
        _mark_output(served)
        try:
            send_message(reply_fd, reply)
        except ProtocolError as exc:
            send_message(
                reply_fd,
                {"ok": False, "error": {"kind": "unencodable", "message": str(exc)}},
            )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
