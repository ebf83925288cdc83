"""Fixture for hostile sandbox cases: an outer process and memory limit set by the test itself."""

import os
from pathlib import Path

import pytest

from autotrain_agent.evaluation.sandbox import _fork_server

_CGROUP_ROOT = Path("/sys/fs/cgroup")
# Outer limits for cases that would harm the host if the sandbox failed: far above what the harness needs,
# far below what a fork bomb or an 8 GiB allocation would take.
_OUTER_MAX_PIDS = 512
_OUTER_MAX_MEMORY_BYTES = 6 * 1024**3


@pytest.fixture
def outer_limits(tmp_path):
    """Move the test process into fresh pids and memory cgroups, so a sandbox bug fails the test, not the host."""
    if os.geteuid() != 0 or not (_CGROUP_ROOT / "pids").is_dir() or not (_CGROUP_ROOT / "memory").is_dir():
        pytest.skip("needs root and cgroup v1 pids and memory controllers to set an outer limit")
    groups = {}
    for controller, limit_file, limit in (("pids", "pids.max", _OUTER_MAX_PIDS),
                                          ("memory", "memory.limit_in_bytes", _OUTER_MAX_MEMORY_BYTES)):
        group = _CGROUP_ROOT / controller / f"autotrain-test-{os.getpid()}-{tmp_path.name}"
        group.mkdir()
        (group / limit_file).write_text(str(limit))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        groups[controller] = group
    # A fork server started before the move would fork the sandboxed processes outside these groups.
    _fork_server().stop()
    yield
    _fork_server().stop()
    for controller, group in groups.items():
        (_CGROUP_ROOT / controller / "cgroup.procs").write_text(str(os.getpid()))
        for pid in (group / "cgroup.procs").read_text().split():
            if pid != str(os.getpid()):
                os.kill(int(pid), 9)
        group.rmdir()
