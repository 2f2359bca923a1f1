"""Helpers for the benchmarks: paths, machine description, CPU load and statistics."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPE = REPO_ROOT / "recipes" / "chargen.toml"
NAMES_RECIPE = REPO_ROOT / "recipes" / "names.toml"
BBC_NEWS_RECIPE = REPO_ROOT / "recipes" / "classify.toml"
BENCHMARKS_PAGE = REPO_ROOT / "BENCHMARKS.md"


def cpu_model() -> str:
    """Return the CPU model name, family and model from /proc/cpuinfo.

    Off Linux, returns platform's guess. A virtual machine may report only a
    short name such as "AMD EPYC", which the family and model numbers narrow down.
    """
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model"):
                    fields.setdefault(key, value.strip())
                if not line.strip():
                    break  # the first processor's block is enough
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    name = fields["model name"]
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def describe_machine() -> dict[str, str | int]:
    """Return the CPU, core counts, torch version and torch thread count in use."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count() or 0,
        "usable_cpus": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


@dataclass
class CpuSample:
    """CPU time counters at one moment, in seconds."""

    wall: float
    machine_busy: float | None  # all processes, from /proc/stat, or None off Linux
    own: float  # this process and its waited-for children


def sample_cpu() -> CpuSample:
    """Read the machine-wide and this process's CPU time counters."""
    own = 0.0
    for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(scope)
        own += usage.ru_utime + usage.ru_stime
    return CpuSample(time.perf_counter(), _machine_busy_seconds(), own)


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # The fields are: cpu user nice system idle iowait irq softirq steal guest
    # guest_nice. Guest time is already counted in user, so only eight add up.
    jiffies = [int(value) for value in fields[1:9]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]
    return busy / os.sysconf("SC_CLK_TCK")


def other_cores_busy(start: CpuSample, end: CpuSample) -> float | None:
    """Return how many cores other processes kept busy on average between two samples.

    The figure is machine-wide busy time minus this process's own CPU time,
    divided by the wall time. It is None where /proc/stat is missing.
    """
    if start.machine_busy is None or end.machine_busy is None:
        return None
    wall = end.wall - start.wall
    if wall <= 0:
        return None
    others = (end.machine_busy - start.machine_busy) - (end.own - start.own)
    return max(0.0, others / wall)


def median(values: list[float]) -> float:
    """Return the median of a non-empty list."""
    return statistics.median(values)


def synchronize(device: torch.device | None) -> None:
    """Wait for the kernels queued on a CUDA device, and do nothing for the CPU."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_busy(busy: float | None) -> str:
    """Return how many cores other processes kept busy, as the reports print it."""
    return "not measured" if busy is None else f"{busy:.2f} cores"
