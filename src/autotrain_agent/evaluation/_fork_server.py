"""Start sandboxed processes by forking a long-lived, trusted fork server instead of a fresh interpreter each time.

The server is `_sandbox_child.py` run with `--fork-server`, in its own session, with an empty environment. It is
single-threaded and never runs untrusted code, so `fork` is safe there. Each forked child starts a new session,
keeps only the descriptors sent with its request and then confines itself exactly as a fresh interpreter would.
The harness waits on a pidfd and sends the server a request to reap the child after killing its process group, so the pid
stays reserved while the harness may still signal it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time

logger = logging.getLogger(__name__)

_MAX_REPLY_BYTES = 4096


class ForkedProcess:
    """A sandboxed process started by the fork server, with the parts of `subprocess.Popen` the sandbox uses."""

    def __init__(self, server: ForkServer, pid: int, stdout) -> None:
        self.server = server
        self.pid = pid
        self.stdout = stdout
        """Readable end of the pipe that receives the process's stdout and stderr."""
        self.returncode: int | None = None
        """Exit code once reaped: negative for a signal, as in `subprocess`; `None` when the server lost it."""
        self._pidfd = os.pidfd_open(pid)
        self._reaped = False

    @property
    def pidfd(self) -> int:
        """A descriptor that polls readable once the process has exited."""
        return self._pidfd

    def reap(self) -> None:
        """Wait for the exited process through the server and record its exit code; call it after killing."""
        reap_processes([self])


def reap_processes(processes: list[ForkedProcess]) -> None:
    """Reap exited processes, each started by the same server, in one request, recording their exit codes."""
    pending = [process for process in processes if not process._reaped]
    if not pending:
        return
    for process in pending:
        process._reaped = True
    returncodes = pending[0].server.reap_all([process.pid for process in pending])
    for process, returncode in zip(pending, returncodes):
        process.returncode = returncode
        os.close(process._pidfd)


class ForkServer:
    """One fork server process, restarted when it dies, shared by threads through a lock."""

    def __init__(self, interpreter: str, source: str, interpreter_flags: tuple[str, ...]) -> None:
        self.command = [interpreter, *interpreter_flags, "-c", source, "--fork-server"]
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.socket: socket.socket | None = None
        self.owner_pid = os.getpid()

    def spawn(self, config: dict, *, env: dict[str, str], fds: dict[str, int]) -> ForkedProcess:
        """Fork a process that runs `_sandbox_child` with `config`, with `fds` placed under their config keys.

        The descriptors in `fds` stay open in the caller. The process's stdout and stderr go to a new pipe.
        """
        return self.spawn_all([(config, env, fds)])[0]

    def spawn_all(self, specs: list[tuple[dict, dict[str, str], dict[str, int]]]) -> list[ForkedProcess]:
        """Fork one process per `(config, env, fds)` spec, as `spawn` does, in a single request to the server.

        One request instead of one per process saves a round trip, which costs a scheduler wake-up of the
        server on a loaded machine.
        """
        outputs = [os.pipe() for _ in specs]
        processes, fds_sent = [], []
        for (config, env, fds), (_, output_write) in zip(specs, outputs):
            processes.append({"config": config, "env": env, "fd_keys": list(fds)})
            fds_sent += [output_write, *fds.values()]
        try:
            reply = self._request(json.dumps({"op": "spawn", "processes": processes}).encode(), fds_sent)
        except BaseException:
            for output_read, _ in outputs:
                os.close(output_read)
            raise
        finally:
            for _, output_write in outputs:
                os.close(output_write)
        return [ForkedProcess(self, pid, os.fdopen(output_read, "rb"))
                for pid, (output_read, _) in zip(reply["pids"], outputs)]

    def reap(self, pid: int) -> int | None:
        """Return the exit code of an exited child, or `None` if the server that started it is gone."""
        return self.reap_all([pid])[0]

    def reap_all(self, pids: list[int]) -> list[int | None]:
        """Return the exit code of each exited child in one request; all `None` if the server is gone."""
        try:
            reply = self._request(json.dumps({"op": "reap", "pids": pids}).encode(), [], restart=False)
            return reply["returncodes"]
        except OSError as err:
            logger.warning("Could not reap sandboxed processes %s: %s", pids, err)
            return [None] * len(pids)

    def stop(self) -> None:
        """Stop the server process; the next `spawn` starts a new one, which inherits the caller's cgroups anew."""
        with self.lock:
            self._discard()

    def _request(self, message: bytes, fds: list[int], *, restart: bool = True) -> dict:
        with self.lock:
            if self.owner_pid != os.getpid():
                # A forked copy of the harness must not share the parent's server and its replies.
                self.process, self.socket, self.owner_pid = None, None, os.getpid()
            if self.process is None or self.process.poll() is not None:
                if not restart:
                    raise OSError("the fork server that started the process has exited")
                if self.process is not None:
                    logger.warning("The sandbox fork server %d exited with status %s; starting a new one.",
                                   self.process.pid, self.process.returncode)
                self._start()
            try:
                return self._exchange_or_restart(message, fds, restart=restart)
            except BaseException:
                # The server may still send this request's reply, and the next request would read it as its own.
                self._discard()
                raise

    def _exchange_or_restart(self, message: bytes, fds: list[int], *, restart: bool) -> dict:
        try:
            return self._exchange(message, fds)
        except OSError as err:
            if not restart:
                raise
            # A sandboxed process can kill the server when both run under the same uid (without root).
            logger.warning("The sandbox fork server failed (%s, exit status %s); starting a new one.",
                           err, self.process.poll())
            self._start()
            return self._exchange(message, fds)

    def _exchange(self, message: bytes, fds: list[int]) -> dict:
        socket.send_fds(self.socket, [message], fds)
        reply = self.socket.recv(_MAX_REPLY_BYTES)
        if not reply:
            raise ConnectionResetError("the fork server closed its socket")
        return json.loads(reply)

    def _discard(self) -> None:
        if self.socket is not None:
            self.socket.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process, self.socket = None, None

    def _start(self) -> None:
        self._discard()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        started = time.monotonic()
        self.process = subprocess.Popen(
            [*self.command, str(theirs.fileno())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),), env={}, cwd="/", start_new_session=True,
        )
        theirs.close()
        self.socket = ours
        logger.debug("started the sandbox fork server %d in %.3f s", self.process.pid, time.monotonic() - started)
