"""`dlgrade grade`'s live display of a class run: students done, running and failed."""

from __future__ import annotations

import os
import threading
import time

from dlgrade.classrun.events import CheckGraded, GraderDied, StudentGraded, StudentStarted
from dlgrade.reports.console import FAIL_MARK, PASS_MARK, format_points


class ClassProgress:
    """`dlgrade grade`'s live display: students done, running and failed, and an ETA.

    "Failed" counts the students whose run ended abnormally (a timeout or a crash in some
    check, or a grading process that died), not the ones who merely lost points.

    It receives the run's typed events (:mod:`dlgrade.classrun.events`) and writes to a duplicate
    of stdout taken before pytest starts capturing: one line per finished student and, on a
    terminal, a status line that ticks every second.
    """

    def __init__(self, total: int):
        self.total = total
        self.began = time.monotonic()
        self.running: set[str] = set()
        self.done: set[str] = set()
        self.abnormal: set[str] = set()
        self._fd = os.dup(1)
        self._tty = os.isatty(self._fd)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._tty:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def event(self, event) -> None:
        with self._lock:
            if isinstance(event, StudentStarted):
                if event.student not in self.done:
                    self.running.add(event.student)
            elif isinstance(event, GraderDied):
                self.abnormal.add(event.student)
            elif isinstance(event, CheckGraded):
                if event.abnormal:
                    self.abnormal.add(event.student)
                if event.student not in self.done:
                    self.running.add(event.student)
            elif isinstance(event, StudentGraded):
                self._finished(event.record)

    def _finished(self, record) -> None:
        student = record.student
        if record.abnormal() or record.status != "graded":
            self.abnormal.add(student)
        self.running.discard(student)
        if student in self.done:
            return
        self.done.add(student)
        full = record.score >= record.max_score > 0
        mark = FAIL_MARK if student in self.abnormal else PASS_MARK if full else "•"
        line = (
            f"[{len(self.done):>{len(str(self.total))}}/{self.total}] {mark} {student}  "
            f"{format_points(record.score)}/{format_points(record.max_score)} "
            f"({record.percent:.1f}%)  {record.wall_s:.0f} s"
            + ("  — ended abnormally (timeout or crash)" if student in self.abnormal else "")
        )
        self._write(line + "\n")

    def status(self) -> str:
        elapsed = time.monotonic() - self.began
        done = len(self.done)
        eta = ""
        if done and done < self.total:
            eta = f" · ETA {_clock(elapsed / done * (self.total - done))}"
        return (
            f"graded {done}/{self.total} · running {len(self.running)} · "
            f"failed {len(self.abnormal)} (timeout, crash) · {_clock(elapsed)}{eta}"
        )

    def _write(self, text: str) -> None:
        if self._fd is None:
            return
        if self._tty:
            text = "\r\x1b[K" + text + self.status()
        os.write(self._fd, text.encode())

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self._fd is not None:
                    os.write(self._fd, ("\r\x1b[K" + self.status()).encode())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._fd is not None:
                if self._tty:
                    os.write(self._fd, b"\r\x1b[K")
                os.close(self._fd)
                self._fd = None


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
