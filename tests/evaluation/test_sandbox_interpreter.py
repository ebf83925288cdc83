"""The sandbox's interpreter search: one search and one warning per process, whichever threads ask."""

import logging
import subprocess
import sys
import threading
import time

from autotrain_agent.evaluation import sandbox


def test_interpreter_warning_logged_once(monkeypatch, caplog):
    def probe(command, **kwargs):
        time.sleep(0.05)  # keeps every thread inside the search at once
        return subprocess.CompletedProcess(command, 1 if command[0] == sys.executable else 0)

    monkeypatch.setattr(sandbox, "is_privileged", lambda: True)
    monkeypatch.setattr(sandbox, "_allocate_uid", lambda: 65000)
    monkeypatch.setattr(sandbox.subprocess, "run", probe)
    sandbox._search_interpreter.cache_clear()
    found = []
    threads = [threading.Thread(target=lambda: found.append(sandbox.find_interpreter())) for _ in range(4)]

    try:
        with caplog.at_level(logging.WARNING, logger="autotrain_agent.evaluation.sandbox"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sandbox._search_interpreter.cache_clear()

    assert len(set(found)) == 1
    assert found[0] != sys.executable
    assert caplog.text.count("Sandboxed code runs under") == 1
