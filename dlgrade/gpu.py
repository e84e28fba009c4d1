"""GPUs: which ones this machine has, which one each grading process's workers get, and the
environment, device files and libraries a jailed worker needs to use it.

Stdlib only, and no TensorFlow: the trusted side decides before any worker starts, from
the NVIDIA device files (``/dev/nvidia0`` …), ``nvidia-smi`` when it is installed, and the
``CUDA_VISIBLE_DEVICES`` this process was started with (a SLURM job's GPUs, a container's).

The rules (docs/gpu.md):

- A grading session's worker gets a GPU when some check it runs is of the full tier or is
  declared ``@dlgrade.check(gpu=True)``, and the machine has one. Other workers get
  ``CUDA_VISIBLE_DEVICES=-1``: TensorFlow then creates no CUDA context and takes no GPU
  memory, and the worker keeps its address-space limit.
- ``dlgrade grade --jobs N`` runs N grading processes; process *k* (pytest-xdist's ``gwk``)
  gives its workers GPU ``k mod G`` of the G GPUs in use (all visible ones, or ``--gpus
  0,1``, numbered as this process sees them). Memory growth is on in every GPU worker, so
  two processes sharing a GPU each take what they use, not all of it.
- A GPU worker's memory limit cannot be an address-space limit (CUDA reserves far more
  address space at start-up than any useful RLIMIT_AS): the trusted side adds up the
  worker's resident memory instead while a call runs (:mod:`dlgrade.sandbox.session`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

#: what a worker without a GPU gets: CUDA enumerates no device, TensorFlow runs on the CPU
NO_GPU = "-1"
#: the grader's variables a GPU worker gets as they are (what CUDA, XLA and TensorFlow read
#: to find their libraries and tools, or to tune the GPU); every other one stays out
GPU_ENV = (
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUDA_DEVICE_ORDER",
    "CUDA_CACHE_MAXSIZE",
    "XLA_FLAGS",
    "TF_GPU_ALLOCATOR",
    "TF_GPU_THREAD_MODE",
    "NVIDIA_TF32_OVERRIDE",
)
#: the variables that name library folders: the jail keeps those folders reachable
LIBRARY_ENV = ("LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH")
#: the device files the CUDA driver opens
DEVICE_FILES = re.compile(r"nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset)$")
SMI_QUERY = "--query-gpu=index,uuid,name,memory.total"
SMI_PATH = "/usr/bin:/usr/local/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin"


class GpuOptionError(ValueError):
    """``--gpus`` names GPUs this machine does not have, or is not a list of numbers."""


@dataclass(frozen=True)
class Gpu:
    """One GPU a worker may be given."""

    #: how CUDA_VISIBLE_DEVICES names it to a worker: an index, ``GPU-<uuid>`` or ``MIG-…``
    visible_as: str
    name: str = ""
    uuid: str = ""
    memory_mib: int | None = None

    def label(self) -> str:
        return f"GPU {self.visible_as}" + (f": {self.name}" if self.name else "")


@dataclass(frozen=True)
class Device:
    """What one grading process's workers run on, and why."""

    gpu: Gpu | None
    #: why not a GPU, or how this one was chosen
    why: str
    #: GPUs in use by the run (1 for a CPU device)
    of: int = 1

    @property
    def is_gpu(self) -> bool:
        return self.gpu is not None

    def label(self) -> str:
        """What a record says: ``GPU 0: NVIDIA H200`` or ``CPU``."""
        return self.gpu.label() if self.gpu is not None else "CPU"

    def summary(self) -> str:
        """``CPU (why)`` or ``GPU 0: NVIDIA H200, 143,771 MiB (how it was chosen; …)``."""
        if self.gpu is None:
            return f"CPU ({self.why})"
        memory = f", {self.gpu.memory_mib:,} MiB" if self.gpu.memory_mib else ""
        return f"{self.gpu.label()}{memory} ({self.why}; memory growth on)"

    def describe(self) -> str:
        """The report header's line."""
        return f"device: {self.summary()}"


# -- what this machine has -----------------------------------------------------------------


def device_files(dev: Path = Path("/dev")) -> list[Path]:
    """The NVIDIA device files here (``nvidia0``, ``nvidiactl``, ``nvidia-uvm``, MIG caps)."""
    try:
        found = [p for p in dev.iterdir() if DEVICE_FILES.match(p.name)]
    except OSError:
        return []
    caps = dev / "nvidia-caps"
    if caps.is_dir():
        found += list(caps.iterdir())
    return sorted(found)


def nvidia_smi() -> list[Gpu] | None:
    """The GPUs ``nvidia-smi`` lists, in its (PCI bus) order; None without it."""
    command = shutil.which("nvidia-smi", path=SMI_PATH + ":" + os.environ.get("PATH", ""))
    if command is None:
        return None
    try:
        listed = subprocess.run(
            [command, SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_smi(listed.stdout) if listed.returncode == 0 else None


def parse_smi(text: str) -> list[Gpu]:
    """``index, uuid, name, memory.total`` lines (``--format=csv,noheader,nounits``)."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        memory = parts[-1]
        gpus.append(
            Gpu(
                visible_as=parts[0],
                uuid=parts[1],
                name=", ".join(parts[2:-1]),
                memory_mib=int(memory) if memory.isdigit() else None,
            )
        )
    return gpus


def visible_entries(value: str) -> list[str]:
    """What a ``CUDA_VISIBLE_DEVICES`` value makes visible: its entries up to the first one
    that is not a device (CUDA stops there: ``-1`` and ``""`` hide every GPU)."""
    entries = []
    for entry in (e.strip() for e in value.split(",")):
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        entries.append(entry)
    return entries


def discover(
    environ: Mapping[str, str] | None = None,
    dev: Path = Path("/dev"),
    smi: Callable[[], list[Gpu] | None] = nvidia_smi,
) -> list[Gpu]:
    """The GPUs this process may hand to workers, numbered as this process sees them.

    None without NVIDIA device files. Where this process was started with
    ``CUDA_VISIBLE_DEVICES`` (a SLURM job's GPUs), those devices, in that order, each named
    to a worker as the variable names it; otherwise every GPU ``nvidia-smi`` lists (or one
    per ``/dev/nvidiaN`` without it).
    """
    environ = os.environ if environ is None else environ
    count = sum(p.name[6:].isdigit() for p in device_files(dev))  # nvidia0, nvidia1 …
    if not count:
        return []
    physical = smi() or [Gpu(str(n)) for n in range(count)]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return physical
    known = {g.visible_as: g for g in physical} | {g.uuid: g for g in physical if g.uuid}
    return [
        replace(known.get(entry, Gpu(entry)), visible_as=entry)
        for entry in visible_entries(visible)
    ]


def choose(found: list[Gpu], wanted: str | None) -> list[Gpu]:
    """The GPUs a run uses: ``all`` (default) or ``auto``, ``none``, or ``0,1`` — numbers
    counted as this process sees the GPUs (0 is the first of ``CUDA_VISIBLE_DEVICES``)."""
    text = (wanted or "all").strip().lower()
    if text in ("all", "auto"):
        return list(found)
    if text in ("none", "cpu"):
        return []
    positions = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in positions):
        raise GpuOptionError(
            f"--gpus {wanted}: give GPU numbers separated by commas (0,1), 'all' or 'none'"
        )
    if not found:
        raise GpuOptionError(
            f"--gpus {wanted}: no GPU is visible on this machine (no /dev/nvidia0, or "
            "CUDA_VISIBLE_DEVICES hides them); drop --gpus to grade on the CPU"
        )
    numbers = list(dict.fromkeys(int(p) for p in positions))
    missing = [n for n in numbers if n >= len(found)]
    if missing:
        names = ", ".join(f"{i} ({g.label()})" for i, g in enumerate(found))
        raise GpuOptionError(
            f"--gpus {wanted}: this machine has {len(found)} GPU(s) visible, numbered from 0: "
            f"{names}"
        )
    return [found[n] for n in numbers]


def job_slot(environ: Mapping[str, str] | None = None) -> int:
    """Which of ``--jobs N`` grading processes this is (pytest-xdist's ``gwK`` → K)."""
    environ = os.environ if environ is None else environ
    match = re.fullmatch(r"gw(\d+)", environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else 0


def assign(pool: list[Gpu], *, needed: bool, slot: int = 0, asked: str | None = None) -> Device:
    """The device of one grading process: GPU ``slot mod len(pool)`` when its checks use one."""
    if not pool:
        if (asked or "").strip().lower() in ("none", "cpu"):
            return Device(None, "--gpus none")
        return Device(None, "no GPU on this machine")
    if not needed:
        return Device(None, "no check of this run uses a GPU; quick and standard tiers run on CPUs")
    chosen = pool[slot % len(pool)]
    how = f"job {slot + 1}, round robin over {len(pool)} GPUs" if len(pool) > 1 else "the GPU"
    return Device(chosen, how, of=len(pool))


def uses_gpu(tier: str, gpu: bool) -> bool:
    """Whether a check runs its worker on a GPU where there is one."""
    return gpu or tier == "full"


# -- what a jailed worker needs ------------------------------------------------------------


def worker_env(device: Device, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a worker on ``device`` gets for it (the rest of its environment is the
    sandbox's own, scrubbed one)."""
    if device.gpu is None:
        return {"CUDA_VISIBLE_DEVICES": NO_GPU}
    environ = os.environ if environ is None else environ
    env = {name: environ[name] for name in GPU_ENV if name in environ}
    if "LD_LIBRARY_PATH" in env:
        folders = [f for f in env["LD_LIBRARY_PATH"].split(":") if f and os.path.isdir(f)]
        env["LD_LIBRARY_PATH"] = ":".join(folders)
        if not folders:
            del env["LD_LIBRARY_PATH"]
    env["CUDA_VISIBLE_DEVICES"] = device.gpu.visible_as
    # nvidia-smi's numbers (the PCI bus order), not CUDA's default "fastest first"
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env


def library_folders(env: Mapping[str, str]) -> list[Path]:
    """The folders a GPU worker's library variables name, as real paths: the jail keeps
    them reachable even inside a folder it hides (a CUDA toolkit under /root or /home)."""
    folders = []
    for name in LIBRARY_ENV:
        for folder in env.get(name, "").split(":"):
            if folder and os.path.isdir(folder):
                folders.append(Path(os.path.realpath(folder)))
    return sorted(set(folders))


def device_groups(files: list[Path]) -> list[int]:
    """The groups the worker's uid must be in to open the GPU's device files.

    The jail drops every supplementary group; where a device file is not open to everyone
    (``crw-rw---- root video``), the worker keeps that file's group, and only that one.
    """
    groups = set()
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        everyone = info.st_mode & (stat.S_IROTH | stat.S_IWOTH) == (stat.S_IROTH | stat.S_IWOTH)
        group = info.st_mode & (stat.S_IRGRP | stat.S_IWGRP) == (stat.S_IRGRP | stat.S_IWGRP)
        if not everyone and group:
            groups.add(info.st_gid)
    return sorted(groups)


def ensure_uvm(
    dev: Path = Path("/dev"), run: Callable[[list[str]], object] | None = None
) -> str | None:
    """Make sure ``/dev/nvidia-uvm`` exists before a jailed worker needs it.

    The driver creates it when the first CUDA program starts, through the setuid
    ``nvidia-modprobe``; a jailed worker may not run setuid programs (no new privileges), so
    on a machine where no CUDA program ran since boot its ``cuInit`` would fail. The grader
    creates it first. Returns the command run, or None where nothing was needed or possible.
    """
    if not (dev / "nvidiactl").exists() or (dev / "nvidia-uvm").exists():
        return None
    modprobe = shutil.which("nvidia-modprobe", path=SMI_PATH + ":/usr/sbin:/sbin")
    if modprobe is None:
        return None
    command = [modprobe, "-u", "-c=0"]
    try:
        (run or _quiet)(command)
    except (OSError, subprocess.SubprocessError):
        return None
    return " ".join(command)


def _quiet(command: list[str]) -> None:
    subprocess.run(command, capture_output=True, timeout=30, check=False)


# -- the grading process's device ----------------------------------------------------------

_current: Device | None = None


def set_current(device: Device) -> None:
    """The device this grading process gives its workers (the plugin sets it)."""
    global _current
    _current = device


def current() -> Device:
    """This grading process's device; outside a grading session, what one would get."""
    if _current is not None:
        return _current
    return assign(discover(), needed=True, slot=job_slot())
