"""Code that runs inside each sandboxed process: confinement, then one of three roles.

`sandbox.py` passes this file's source to `python -I -S -c`, so the module imports only the standard library and
never the package. With `--fork-server FD` it becomes a fork server that starts each sandboxed process by `fork`,
which is cheaper than starting an interpreter. With one JSON argument it runs one role directly. The roles are:

- `program`: execute one program file. Its status report is forgeable by the program itself.
- `candidate`: execute the generated code, then answer calls to the entry point received over a pipe.
- `checker`: execute the problem's trusted prompt and tests, calling the entry point through a proxy that sends
  arguments to the candidate process and receives results as plain data. Only this role can report a pass.
"""

import ctypes
import json
import os
import resource
import struct
import sys

_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
# World-writable folders that get an empty tmpfs per untrusted process; what it writes there goes away with it.
_PRIVATE_TMPFS_PATHS = (b"/tmp", b"/var/tmp", b"/dev/shm")
_PRIVATE_TMPFS_OPTIONS = b"size=64m,mode=1777"
_PR_SET_NO_NEW_PRIVS = 38
_FRAME_HEADER = struct.Struct(">I")
_MAX_FRAME_BYTES = 16 * 1024 * 1024


# Standard-library modules that HumanEval prompts and typical generated code import. The fork server imports them
# once, so a forked process finds them loaded: importing `typing` took 10 to 15 ms in a fresh interpreter.
_PRELOADED_MODULES = ("bisect", "collections", "copy", "functools", "hashlib", "heapq", "itertools", "math",
                      "random", "re", "string", "traceback", "typing")
# Set by the fork server when it moved itself into a fresh network namespace that its children inherit.
_network_isolated_by_server = False
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _isolate_network():
    """Move this process into a new network namespace with no interface up; return whether that worked."""
    return os.getuid() == 0 and _LIBC.unshare(_CLONE_NEWNET) == 0


def _isolate_run(workdir, uid, gid):
    """Give this process new network, mount and IPC namespaces with empty temporary folders; return whether it worked.

    Code in two concurrent runs then shares no socket, file or SysV segment, and the tmpfs mounts and segments go
    away with the process tree. A working folder under one of the new mounts is created again at the same path.
    """
    if _LIBC.unshare(_CLONE_NEWNET | _CLONE_NEWNS | _CLONE_NEWIPC) != 0:
        return False
    # Mounts made from here on stay in this namespace instead of propagating to the host's.
    isolated = _LIBC.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) == 0
    for path in _PRIVATE_TMPFS_PATHS if isolated else ():
        if os.path.isdir(path):
            isolated &= _LIBC.mount(b"tmpfs", path, b"tmpfs", _MS_NOSUID | _MS_NODEV, _PRIVATE_TMPFS_OPTIONS) == 0
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    os.chown(workdir, uid, gid)
    return isolated


def _confine(config):
    """Isolate the network, set resource limits and drop root, in that order, because each step needs the last one's rights."""
    untrusted = config["role"] in ("program", "candidate")
    if untrusted and os.getuid() == 0:
        # NOTE: where the kernel refuses these namespaces (some containers), the process stays in the fork
        # server's network namespace and shares /tmp with concurrent runs.
        _isolate_run(config["workdir"], config["uid"], config["gid"])
    network_isolated = _network_isolated_by_server or _isolate_network()
    for name, value in config["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
    # Blocks setuid binaries such as `su` from giving the code its privileges back.
    _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.chdir(config["workdir"])
    os.umask(0o077)
    return network_isolated


def _write_frame(fd, payload):
    message = _FRAME_HEADER.pack(len(payload)) + payload
    while message:
        written = os.write(fd, message)
        message = message[written:]


def _read_exact(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd):
    header = _read_exact(fd, _FRAME_HEADER.size)
    if header is None:
        return None
    (size,) = _FRAME_HEADER.unpack(header)
    if size > _MAX_FRAME_BYTES:
        raise ValueError(f"a message of {size} bytes exceeds the {_MAX_FRAME_BYTES}-byte cap")
    return _read_exact(fd, size)


_CONTAINERS = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_DECODERS = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def _encode(value):
    """Turn a value into JSON-ready plain data, rejecting anything that is not a built-in value type."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in _CONTAINERS:
        return [_CONTAINERS[type(value)], [_encode(item) for item in value]]
    if type(value) is dict:
        return ["dict", [[_encode(key), _encode(item)] for key, item in value.items()]]
    if type(value) is bytes:
        return ["bytes", [value.hex()]]
    if type(value) is complex:
        return ["complex", [value.real, value.imag]]
    # Subclasses such as numpy.float64 convert to the base type. Whatever a hostile subclass returns here is still
    # decoded as plain data on the other side, so the conversion cannot fake equality.
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"a value of type {type(value).__name__} is not plain data (None, bool, numbers, str, bytes, containers)")


def _decode(wire):
    """Rebuild plain data from `_encode` output; every object it creates is a built-in type."""
    if wire is None or type(wire) in (bool, int, float, str):
        return wire
    if type(wire) is not list or len(wire) != 2 or type(wire[0]) is not str or type(wire[1]) is not list:
        raise ValueError(f"malformed value on the wire: {str(wire)[:80]}")
    tag, items = wire
    if tag in _DECODERS:
        return _DECODERS[tag](_decode(item) for item in items)
    if tag == "dict":
        return {_decode(key): _decode(item) for key, item in items}
    if tag == "bytes":
        return bytes.fromhex(items[0] if items and type(items[0]) is str else "")
    if tag == "complex":
        return complex(float(items[0]), float(items[1]))
    raise ValueError(f"unknown type tag {tag!r} on the wire")


def _compile(config, key, filename):
    """Compile the source in the in-memory file `config[key + "_fd"]`, closing it.

    Tracebacks find the lines under `filename` without any file of that name.
    """
    import linecache

    with open(config[key + "_fd"], encoding="utf-8", errors="surrogatepass") as stream:
        source = stream.read()
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def _run_program(config):
    code = _compile(config, "program_source", "program.py")
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    _write_frame(config["status_fd"], b'{"outcome": "passed"}')


def _serve_candidate(config):
    code = _compile(config, "program_source", "candidate.py")
    import builtins

    # Code that patches builtins would otherwise break this serving loop and turn a wrong answer into a timeout.
    original_builtins = dict(vars(builtins))
    namespace = {"__name__": "__candidate__", "__builtins__": __builtins__}
    exec(code, namespace)
    vars(builtins).update(original_builtins)
    function = namespace.get(config["entry_point"])
    request_fd, response_fd = config["request_fd"], config["response_fd"]
    while True:
        request = _read_frame(request_fd)
        if request is None:
            return
        call = json.loads(request)
        try:
            if not callable(function):
                raise NameError(f"the code defines no function named {config['entry_point']!r}")
            reply = {"value": _encode(function(*_decode(call["args"]), **_decode(call["kwargs"])))}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"[:2000]}
        vars(builtins).update(original_builtins)
        _write_frame(response_fd, json.dumps(reply).encode())


class CandidateLostError(BaseException):
    """The candidate process exited or answered garbage; derives from BaseException so test code cannot swallow it."""


class CandidateCallError(Exception):
    """The candidate function raised an exception in its own process."""


def _describe_test_failure(error):
    """Name the exception and the test line that raised it, such as `AssertionError at tests.py:12: assert ...`."""
    import traceback

    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == "tests.py"]
    where = f" at tests.py:{frames[-1].lineno}: {frames[-1].line}" if frames else ""
    message = f": {error}" if str(error) else ""
    return f"{type(error).__name__}{where}{message}"[:2000]


def _run_checker(config):
    lost = []

    def call_candidate(*args, **kwargs):
        if lost:
            raise CandidateLostError(lost[0])
        try:
            _write_frame(config["request_fd"], json.dumps({"args": _encode(args), "kwargs": _encode(kwargs)}).encode())
            response = _read_frame(config["response_fd"])
            if response is None:
                raise EOFError("no reply")
            reply = json.loads(response)
            if type(reply) is not dict:
                raise ValueError("reply is not an object")
            if "error" in reply:
                raise CandidateCallError(str(reply["error"]))
            return _decode(reply["value"])
        except (OSError, EOFError, ValueError, KeyError, TypeError, RecursionError) as error:
            # The error can quote the candidate's reply, and a verdict over the pipe's 64 KiB would block its write.
            lost.append("the candidate process exited or broke the protocol before the tests finished "
                        f"({str(error)[:500]})")
            raise CandidateLostError(lost[0]) from None

    namespace = {"__name__": "__checker__", "__builtins__": __builtins__}
    for source_key, filename in (("support_source", "support.py"), ("test_source", "tests.py")):
        exec(_compile(config, source_key, filename), namespace)
    # HumanEval tests may call the entry point by name; in the reference harness that name is the candidate's.
    namespace[config["entry_point"]] = call_candidate
    try:
        namespace["check"](call_candidate)
    except CandidateLostError as error:
        verdict = {"outcome": "failed", "detail": str(error), "candidate_lost": True}
    except BaseException as error:
        verdict = {"outcome": "failed", "detail": _describe_test_failure(error)}
    else:
        verdict = {"outcome": "failed", "detail": lost[0], "candidate_lost": True} if lost else {"outcome": "passed", "detail": ""}
    _write_frame(config["verdict_fd"], json.dumps(verdict).encode())


def _serve_forks(socket_fd):
    """Fork one sandboxed process per request received on a SOCK_SEQPACKET socket, until the socket closes.

    A `spawn` request carries the config, environment and file descriptors of one or more processes and gets their
    pids back. A `reap` request waits for exited children and gets their exit codes back, so a child stays a
    zombie, and its pid cannot be reused, until the harness is done with it. This process never runs untrusted code.
    """
    import importlib
    import socket

    global _network_isolated_by_server
    # One namespace for the server and every process it forks: creating and tearing one down per process cost
    # more than any other confinement step.
    _network_isolated_by_server = _isolate_network()
    for name in _PRELOADED_MODULES:
        importlib.import_module(name)
    _warm_up()
    server = socket.socket(fileno=socket_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(server, 1 << 20, 16)
        except OSError:
            return
        if not message:
            return
        request = json.loads(message)
        if request["op"] == "reap":
            server.sendall(json.dumps({"returncodes": [_reap(pid) for pid in request["pids"]]}).encode())
            continue
        pids, offset = [], 0
        for spec in request["processes"]:
            count = 1 + len(spec["fd_keys"])
            pid = os.fork()
            if pid == 0:
                _run_forked_child(spec, fds[offset : offset + count])
            pids.append(pid)
            offset += count
        for fd in fds:
            os.close(fd)
        server.sendall(json.dumps({"pids": pids}).encode())


def _warm_up():
    """Run each step a forked process takes once here, so that every child inherits the state they initialise.

    A child's first `compile` took about 1.2 ms of CPU when the server had not compiled a string of its own.
    """
    for symbol in ("prctl", "unshare", "mount"):
        getattr(_LIBC, symbol)  # ctypes looks the symbol up once and keeps it on the library object
    source_fd = os.memfd_create("warm_up")
    os.write(source_fd, b"def warm_up(values: list) -> int:\n    return len(values)\n")
    os.lseek(source_fd, 0, os.SEEK_SET)
    namespace = {"__name__": "__warm_up__"}
    exec(_compile({"program_source_fd": source_fd}, "program_source", "warm_up.py"), namespace)
    _decode(json.loads(json.dumps(_encode(namespace["warm_up"]([(1, 2.0, "3")])))))
    _FRAME_HEADER.pack(0)
    import linecache

    linecache.cache.pop("warm_up.py", None)


def _reap(pid):
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _run_forked_child(request, fds):
    """Become a fresh sandboxed process: new session, only the given descriptors, then one role. Never returns."""
    exit_code = 1
    try:
        os.setsid()
        output_fd, passed = fds[0], fds[1:]
        config = request["config"]
        config.update(zip(request["fd_keys"], passed))
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        # The fork server's socket must not reach the untrusted code: it could ask for an unconfined process.
        previous = 2
        for fd in sorted(set(passed)):
            os.closerange(previous + 1, fd)
            previous = fd
        os.closerange(previous + 1, os.sysconf("SC_OPEN_MAX"))
        os.environ.clear()
        os.environ.update(request["env"])
        _run_role(config)
        exit_code = 0
    except SystemExit as exit_request:
        code = exit_request.code
        exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exit_code & 0xFF)


def _run_role(config):
    network_isolated = _confine(config)
    if "status_fd" in config:
        _write_frame(config["status_fd"], json.dumps({"network_isolated": network_isolated}).encode())
    elif "verdict_fd" in config:
        _write_frame(config["verdict_fd"], json.dumps({"network_isolated": network_isolated}).encode())
    role = config["role"]
    if role == "program":
        _run_program(config)
    elif role == "candidate":
        _serve_candidate(config)
    else:
        _run_checker(config)


def main():
    if sys.argv[1] == "--fork-server":
        _serve_forks(int(sys.argv[2]))
    else:
        _run_role(json.loads(sys.argv[1]))


if __name__ == "__main__":
    main()
