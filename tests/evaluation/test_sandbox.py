"""The sandbox and the HumanEval harness against hostile completions.

Hostile answers sit between two correct ones (HumanEval/0 and HumanEval/2) and run through the real harness
and the real sandbox. Completion-style answers continue the prompt's function, so module-level code after the
body runs when the candidate module loads.
"""

import contextlib
import os
import resource
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from humaneval_fakes import processes_with_marker, run_problem_set, sandbox_processes, with_hostile_middle

from autotrain_agent.evaluation.humaneval import load_humaneval_problems
from autotrain_agent.evaluation.sandbox import SandboxLimits, is_privileged, run_program, run_tests

needs_root = pytest.mark.skipif(not is_privileged(), reason="uid, process and network isolation need root")


def _outcomes(result):
    return [problem.outcome for problem in result.results]


def test_canonical_solution_passes():
    problem = load_humaneval_problems(limit=1)[0]

    result = run_tests(problem.prompt + problem.canonical_solution, entry_point=problem.entry_point,
                       tests=problem.test, support_code=problem.prompt, limits=SandboxLimits())

    assert result.outcome == "passed"
    assert result.detail == ""


def test_wrong_answer_fails_with_test_line():
    problem = load_humaneval_problems(limit=1)[0]

    result = run_tests(problem.prompt + "    return True\n", entry_point=problem.entry_point,
                       tests=problem.test, support_code=problem.prompt, limits=SandboxLimits())

    assert result.outcome == "failed"
    assert "AssertionError at tests.py:" in result.detail
    assert "assert candidate(" in result.detail


def test_large_sources_pass_and_fail():
    problem = load_humaneval_problems(limit=1)[0]
    padding = "# padding\n" * 6000  # about 60 KB
    limits = SandboxLimits()

    passed = run_tests(padding + problem.prompt + problem.canonical_solution, entry_point=problem.entry_point,
                       tests=padding + problem.test, support_code=problem.prompt, limits=limits)
    failed = run_tests(problem.prompt + "    return True\n", entry_point=problem.entry_point,
                       tests=padding + problem.test, support_code=padding + problem.prompt, limits=limits)

    assert passed.outcome == "passed", passed.detail
    assert failed.outcome == "failed"
    assert "assert candidate(" in failed.detail


@pytest.mark.parametrize("padding", [
    "",  # small source
    "# padding\n" * 6000,  # 60 KB source
])
def test_lone_surrogate_fails_like_a_syntax_error(padding):
    problem = load_humaneval_problems(limit=1)[0]
    code = padding + "text = '\udc80'\n" + problem.prompt + problem.canonical_solution

    result = run_tests(code, entry_point=problem.entry_point, tests=problem.test, support_code=problem.prompt,
                       limits=SandboxLimits())
    program = run_program(padding + "text = '\ud800'\nprint(text)\n", limits=SandboxLimits())

    assert result.outcome == "failed"
    assert "candidate process exited" in result.detail
    assert program.outcome == "failed"
    assert "surrogates not allowed" in program.output


def test_oversized_reply_fails_without_timeout():
    problem = load_humaneval_problems(limit=1)[0]
    # The reply is a complex number whose real part is a 10 MB string, so the test process rejects it quoting it.
    hostile = problem.prompt + (
        "    return None\n"
        "import __main__, json\n"
        "_write_frame = __main__._write_frame\n"
        "__main__._write_frame = lambda fd, payload: _write_frame(\n"
        "    fd, json.dumps({'value': ['complex', ['x' * 10_000_000, 0]]}).encode())\n"
    )

    result = run_tests(hostile, entry_point=problem.entry_point, tests=problem.test, support_code=problem.prompt,
                       limits=SandboxLimits(timeout_s=5.0))

    assert result.outcome == "failed"
    assert "could not convert string to float" in result.detail
    assert len(result.detail) < 2000


def test_tests_are_not_in_candidate_memory():
    problem = load_humaneval_problems(limit=1)[0]
    # A wrong answer that looks up each expected value in the tests, found in the fork server's spawn request
    # that is still on the candidate's stack.
    hostile = problem.prompt + (
        "    return ANSWERS[repr((numbers, threshold))]\n"
        "import sys\n"
        "frame, tests = sys._getframe(), None\n"
        "while frame is not None and tests is None:\n"
        "    request = frame.f_locals.get('request')\n"
        "    if isinstance(request, dict) and 'processes' in request:\n"
        "        tests = request['processes'][1]['config'].get('test_source')\n"
        "    frame = frame.f_back\n"
        "ANSWERS = {}\n"
        "class Recorder:\n"
        "    def __init__(self, args):\n        self.args = args\n"
        "    def __eq__(self, expected):\n        ANSWERS[repr(self.args)] = expected\n        return True\n"
        "namespace = {}\n"
        "exec(tests, namespace)\n"
        "namespace['check'](lambda *args: Recorder(args))\n"
    )

    result = run_tests(hostile, entry_point=problem.entry_point, tests=problem.test, support_code=problem.prompt,
                       limits=SandboxLimits())

    assert result.outcome == "failed"


def test_earlier_tests_are_not_in_later_process_memory():
    problem = load_humaneval_problems(limit=1)[0]
    marker = f"earlier-tests-{uuid.uuid4().hex}"
    # The program builds the marker at run time, so its own source has no copy.
    scan = (
        "import ctypes\n"
        f"marker = ''.join(reversed({marker[::-1]!r})).encode()\n"
        "copies = 0\n"
        "for line in open('/proc/self/maps'):\n"
        "    fields = line.split()\n"
        "    if fields[1].startswith('rw') and (len(fields) < 6 or fields[5] == '[heap]'):\n"
        "        start, end = (int(address, 16) for address in fields[0].split('-'))\n"
        "        copies += ctypes.string_at(start, end - start).count(marker)\n"
        "print(copies)\n"
    )
    # The scan counts its own copy of the marker too, so a scan before the tests sets the baseline.
    baseline = run_program(scan, limits=SandboxLimits())
    run_tests(problem.prompt + problem.canonical_solution, entry_point=problem.entry_point,
              tests=f"{problem.test}\n# {marker}\n", support_code=problem.prompt, limits=SandboxLimits())

    result = run_program(scan, limits=SandboxLimits())

    assert baseline.outcome == "passed"
    assert result.outcome == "passed"
    assert result.output == baseline.output


def test_infinite_loop_times_out_and_kills_children():
    marker = f"loop-child-{uuid.uuid4().hex}"
    hostile = (
        "    return None\nimport subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'])\n"
        "while True:\n    pass\n"
    )

    started = time.monotonic()
    result = run_problem_set(with_hostile_middle(hostile), timeout_s=1.0)
    elapsed_s = time.monotonic() - started

    assert _outcomes(result) == ["passed", "timed_out", "passed"]
    assert elapsed_s < 5.0
    assert processes_with_marker(marker) == []


@needs_root
def test_fork_bomb_fails_and_leaves_no_process(outer_limits):
    hostile = "    return None\nimport os\nwhile True:\n    os.fork()\n"

    result = run_problem_set(with_hostile_middle(hostile), timeout_s=3.0)

    assert _outcomes(result)[0] == "passed"
    assert _outcomes(result)[1] in ("failed", "timed_out")
    assert _outcomes(result)[2] == "passed"
    assert sandbox_processes() == []


def test_huge_allocation_fails_fast_without_harness_growth(outer_limits):
    hostile = "    buffer = bytearray(8 * 1024**3)\n    buffer[::4096] = b'x' * len(buffer[::4096])\n    return None\n"
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    result = run_problem_set(with_hostile_middle(hostile), timeout_s=10.0)

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert result.results[1].duration_s < 2.0
    assert "MemoryError" in result.results[1].detail
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb < 50 * 1024


def test_interrupted_run_leaves_no_process():
    marker = f"interrupted-{uuid.uuid4().hex}"
    program = ("import os, sys\n"
               f"os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n")
    previous_handler = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.5)

    try:
        with pytest.raises(KeyboardInterrupt):
            run_program(program, limits=SandboxLimits(timeout_s=30.0))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)

    assert processes_with_marker(marker) == []


def test_printing_loop_times_out_with_capped_output():
    problem = load_humaneval_problems(limit=1)[0]
    limits = SandboxLimits(timeout_s=1.0, max_output_bytes=4096)

    direct = run_tests("while True:\n    print('x' * 1000)\n", entry_point=problem.entry_point,
                       tests=problem.test, support_code=problem.prompt, limits=limits)
    harness = run_problem_set(with_hostile_middle("    while True:\n        print('x' * 1000)\n"), timeout_s=1.0)

    assert direct.outcome == "timed_out"
    assert len(direct.output) < limits.max_output_bytes + 100
    assert direct.output.endswith("bytes cut]")
    assert _outcomes(harness) == ["passed", "timed_out", "passed"]


def test_home_writes_leave_user_home_unchanged(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export PS1='$ '\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "harness-tmp"))
    (tmp_path / "harness-tmp").mkdir()
    hostile = (
        "    import os\n"
        f"    for path in (os.path.expanduser('~/.bashrc'), {str(home / '.bashrc')!r}):\n"
        "        try:\n            open(path, 'a').write('owned\\n')\n        except OSError:\n            pass\n"
        f"    for path in (os.path.expanduser('~/owned.txt'), {str(home / 'owned.txt')!r}):\n"
        "        try:\n            open(path, 'w').write('owned')\n        except OSError:\n            pass\n"
        "    return None\n"
    )

    result = run_problem_set(with_hostile_middle(hostile))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert sorted(path.name for path in home.iterdir()) == [".bashrc"]
    assert (home / ".bashrc").read_text() == "export PS1='$ '\n"
    assert list((tmp_path / "harness-tmp").iterdir()) == []


def test_environment_token_never_reaches_output(tmp_path, monkeypatch):
    token = "hf_fake0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    hostile = (
        "    import os\n"
        "    for name, value in os.environ.items():\n"
        "        if value.startswith('hf_') or 'TOKEN' in name:\n"
        "            print(name, value)\n"
        "            raise ValueError(value)\n"
        "    return None\n"
    )
    details_path = tmp_path / "details.jsonl"

    result = run_problem_set(with_hostile_middle(hostile), details_path=details_path)

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert token not in result.model_dump_json()
    assert token not in details_path.read_text()


@needs_root
def test_socket_to_localhost_reaches_no_listener():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []
    finished = threading.Event()

    def accept_connections():
        while not finished.is_set():
            try:
                accepted.append(listener.accept())
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept_connections)
    thread.start()
    hostile = (
        "    import socket\n"
        f"    connection = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "    connection.sendall(b'ping')\n"
        "    return None\n"
    )

    result = run_problem_set(with_hostile_middle(hostile))
    finished.set()
    thread.join()
    listener.close()

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert "Network is unreachable" in result.results[1].detail
    assert accepted == []


_ANSWER_SERVER = """
import json, os, socket
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(ADDRESS)
if not ADDRESS.startswith(chr(0)):
    os.chmod(ADDRESS, 0o777)
server.listen(8)
server.settimeout(3)
try:
    while True:
        connection, _ = server.accept()
        connection.sendall(json.dumps(has_close_elements(*json.loads(connection.recv(65536)))).encode())
        connection.close()
except OSError:
    pass
"""
_ANSWER_CLIENT = """    import json, socket, time
    for _ in range(100):
        try:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(ADDRESS)
            break
        except OSError:
            time.sleep(0.02)
    connection.sendall(json.dumps([numbers, threshold]).encode())
    return json.loads(connection.recv(100))
"""


@needs_root
@pytest.mark.parametrize("address", [
    "\0answers-{}",  # abstract socket, visible in the shared network namespace
    "/tmp/answers-{}.sock",  # socket file in the world-writable /tmp
])
def test_concurrent_run_cannot_answer_for_another(address, request):
    problem = load_humaneval_problems(limit=1)[0]
    path = address.format(uuid.uuid4().hex)
    request.addfinalizer(lambda: path.startswith("/") and Path(path).unlink(missing_ok=True))
    address = repr(path)
    server_result = []
    server = threading.Thread(target=lambda: server_result.append(
        run_program(_ANSWER_SERVER.replace("ADDRESS", address), limits=SandboxLimits(timeout_s=5.0))))
    server.start()
    time.sleep(0.3)

    result = run_tests(problem.prompt + _ANSWER_CLIENT.replace("ADDRESS", address), entry_point=problem.entry_point,
                       tests=problem.test, support_code=problem.prompt, limits=SandboxLimits(timeout_s=5.0))
    server.join()

    assert server_result[0].outcome == "passed"
    assert result.outcome == "failed"


@needs_root
def test_killing_parent_group_leaves_harness_running():
    hostile = "    return None\nimport os\nos.kill(os.getppid(), 9)\nos.killpg(os.getpgid(os.getppid()), 9)\n"

    result = run_problem_set(with_hostile_middle(hostile))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert result.value == pytest.approx(2 / 3)


@needs_root
@pytest.mark.parametrize("start", [
    # A new session leaves the process group that the timeout kills.
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', MARKER], start_new_session=True)",
    # A double fork reparents the grandchild to init.
    "os.fork() == 0 and (os.setsid(), os.fork() == 0 and os.execv(sys.executable, "
    "[sys.executable, '-c', 'import time; time.sleep(600)', MARKER]), os._exit(0))",
])
def test_detached_background_process_is_killed(start, outer_limits):
    marker = f"detached-{uuid.uuid4().hex}"
    hostile = f"    return None\nimport os, subprocess, sys\nMARKER = {marker!r}\n{start}\n"

    result = run_problem_set(with_hostile_middle(hostile))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert processes_with_marker(marker) == []


@needs_root
def test_process_killing_its_own_uid_is_killed(outer_limits):
    marker = f"uid-killer-{uuid.uuid4().hex}"
    killer = "import os, time\nwhile True:\n    os.kill(-1, 9)\n    time.sleep(0.001)\n"
    hostile = (
        "    return None\nimport os, sys\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        f"    os.fork() == 0 and os.execv(sys.executable, [sys.executable, '-c', {killer!r}, {marker!r}])\n"
        "    os._exit(0)\n"
        "import time\ntime.sleep(0.5)\n"
    )

    result = run_problem_set(with_hostile_middle(hostile), timeout_s=2.0)

    assert _outcomes(result)[0] == "passed"
    # The killer keeps the candidate's reply pipe open, so the test process may wait until the timeout.
    assert _outcomes(result)[1] in ("failed", "timed_out")
    assert _outcomes(result)[2] == "passed"
    assert processes_with_marker(marker) == []


@needs_root
def test_files_outside_scratch_are_removed(request):
    names = [f"{folder}/left-by-sandbox-{uuid.uuid4().hex}" for folder in ("/tmp", "/var/tmp", "/dev/shm")]
    request.addfinalizer(lambda: [Path(name).unlink(missing_ok=True) for name in names])
    program = f"for name in {names!r}:\n    open(name, 'w').write('x')\n"
    mounts_before = Path("/proc/self/mounts").read_text()

    result = run_program(program, limits=SandboxLimits())

    assert result.outcome == "passed"
    assert [name for name in names if Path(name).exists()] == []
    assert Path("/proc/self/mounts").read_text() == mounts_before


@needs_root
def test_os_system_cannot_write_outside_scratch(tmp_path):
    marker_path = tmp_path / "owned-by-shell"
    hostile = f"    import os\n    os.system('touch {marker_path}')\n    return None\n"

    result = run_problem_set(with_hostile_middle(hostile))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert not marker_path.exists()


def test_patched_builtins_do_not_pass():
    hostile = (
        "    class Anything:\n"
        "        def __eq__(self, other):\n            return True\n"
        "        def __lt__(self, other):\n            return True\n"
        "        def __bool__(self):\n            return True\n"
        "    return Anything()\n"
        "import builtins\n"
        "for _name in ('abs', 'len', 'isinstance', 'round', 'sorted'):\n"
        "    setattr(builtins, _name, lambda *args, **kwargs: 0)\n"
    )
    honest = run_problem_set(with_hostile_middle("    return None\n"))

    result = run_problem_set(with_hostile_middle(hostile))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert result.value == honest.value


@pytest.mark.parametrize("exit_call", ["exit(0)", "import os; os._exit(0)"])
def test_exit_before_tests_fails(exit_call):
    honest = run_problem_set(with_hostile_middle("    return None\n"))

    result = run_problem_set(with_hostile_middle(f"    return None\n{exit_call}\n"))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert "exited" in result.results[1].detail
    assert result.value == honest.value


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_exit_inside_tests_fails(exit_call):
    result = run_problem_set(with_hostile_middle(f"    {exit_call}\n"))

    assert _outcomes(result) == ["passed", "failed", "passed"]
    assert result.value == pytest.approx(2 / 3)


def test_program_exit_status_zero_is_not_pass():
    limits = SandboxLimits()

    finished = run_program("print('done')", limits=limits)
    exited_early = run_program("import sys\nsys.exit(0)\nprint('never')", limits=limits)

    assert finished.outcome == "passed"
    assert finished.output == "done\n"
    assert exited_early.outcome == "failed"


def test_program_environment_has_no_secrets(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_fake0123456789abcdef")

    result = run_program("import os\nprint(sorted(os.environ))", limits=SandboxLimits())

    assert result.output.strip() == "['HOME', 'LANG', 'PATH', 'TMPDIR']"
    assert os.environ["HF_TOKEN"] not in result.output


def test_dead_fork_server_is_replaced(caplog):
    from autotrain_agent.evaluation.sandbox import SandboxLimits, _fork_server, run_program

    run_program("pass", limits=SandboxLimits())
    _fork_server().process.kill()
    _fork_server().process.wait()

    result = run_program("print('still here')", limits=SandboxLimits())

    assert result.outcome == "passed"
    assert result.output == "still here\n"
    assert "fork server" in caplog.text
    assert "starting a new one" in caplog.text


def test_interrupted_request_leaves_no_reply_for_next_run():
    from autotrain_agent.evaluation.sandbox import SandboxLimits, _fork_server, run_program

    run_program("pass", limits=SandboxLimits())
    server_pid = _fork_server().process.pid
    # A stopped server receives the request but cannot reply, so the interrupt lands while the harness waits for it.
    os.kill(server_pid, signal.SIGSTOP)
    previous_handler = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_program("print('interrupted')", limits=SandboxLimits())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        with contextlib.suppress(ProcessLookupError):
            os.kill(server_pid, signal.SIGCONT)

    results = [run_program(f"print({number})", limits=SandboxLimits()) for number in range(3)]

    assert [result.outcome for result in results] == ["passed"] * 3
    assert [result.output for result in results] == ["0\n", "1\n", "2\n"]


def test_sandboxed_processes_stay_in_outer_cgroup(outer_limits):
    from autotrain_agent.evaluation.sandbox import SandboxLimits, run_program

    result = run_program("print(open('/proc/self/cgroup').read())", limits=SandboxLimits())

    assert result.outcome == "passed"
    assert f"autotrain-test-{os.getpid()}" in result.output
