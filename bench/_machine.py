"""Describe the machine and library versions that a benchmark record ran on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Return the machine's total memory in GiB, or `None` where /proc/meminfo is missing."""
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return None


def load_average() -> str:
    """Return the 1-, 5- and 15-minute load averages as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def library_versions(names: tuple[str, ...] = LIBRARIES) -> str:
    """Return `name version` pairs of the installed libraries, skipping those not installed."""
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(versions)


def describe_machine() -> str:
    """Return one line naming the CPU, cores, memory, Python and the load average now."""
    memory = memory_gib()
    memory_text = f"{memory:.0f} GiB RAM" if memory is not None else "RAM unknown"
    return (
        f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, {memory_text}, Python "
        f"{platform.python_version()}; load average {load_average()} at start"
    )
