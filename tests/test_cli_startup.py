"""The command line's light paths: help and status start without importing training or model libraries."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import autotrain_agent

HEAVY_MODULES = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "smolagents", "trackio")
# Runs the command line in a fresh interpreter, because this test process may already have imported torch.
PROBE = """
import json, sys
from autotrain_agent.cli import main
try:
    main(sys.argv[2:])
except SystemExit:
    pass
print(json.dumps([name for name in json.loads(sys.argv[1]) if name in sys.modules]))
"""


def imported_heavy_modules(arguments: list[str], *, cwd: Path) -> list[str]:
    src = str(Path(autotrain_agent.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY_MODULES), *arguments],
        cwd=cwd, env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "arguments",
    [
        ["--help"],  # top-level help builds every subcommand's parser
        ["status"],  # the list of saved experiments
        ["status", "--help"],
    ],
)
def test_light_commands_skip_heavy_imports(arguments, tmp_path):
    imported = imported_heavy_modules(arguments, cwd=tmp_path)

    assert imported == []
