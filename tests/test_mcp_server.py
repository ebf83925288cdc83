"""A real MCP client from the `mcp` SDK talks to `autotrain-agent mcp` over stdio."""

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from autotrain_agent.testing import build_tiny_chat_model, write_code_rows

mcp = pytest.importorskip("mcp")

SRC = Path(__file__).resolve().parents[1] / "src"


async def _session_calls(tmp_path, model_dir, rows):
    params = mcp.StdioServerParameters(
        command=sys.executable,
        args=["-m", "autotrain_agent.cli", "mcp", "--output-dir", str(tmp_path / "work")],
        env={"PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "HF_HOME": os.environ["HF_HOME"], "OMP_NUM_THREADS": "1"},
    )
    async with mcp.stdio_client(params) as (read, write), mcp.ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        created = await session.call_tool(
            "create_experiment", {"goal": "improve code solving with SFT", "model": str(model_dir), "dataset": str(rows), "max_steps": 2}
        )
        experiment_id = created.content[0].text.splitlines()[0].removeprefix("experiment_id: ")
        too_early = await session.call_tool("submit_run", {"experiment_id": experiment_id})
        validated = await session.call_tool("validate_dataset", {"experiment_id": experiment_id})
        estimated = await session.call_tool("estimate_experiment", {"experiment_id": experiment_id})
        inspected = await session.call_tool("inspect_experiment", {"experiment_id": experiment_id})
        unknown = await session.call_tool("inspect_experiment", {"experiment_id": "no-such-experiment"})
    return listed, too_early, validated, estimated, inspected, unknown


def test_mcp_client_lists_tools_and_calls_validate_and_estimate(tmp_path):
    model_dir = build_tiny_chat_model(tmp_path / "tiny-model")
    rows = write_code_rows(tmp_path / "rows.jsonl", count=8)

    listed, too_early, validated, estimated, inspected, unknown = asyncio.run(asyncio.wait_for(_session_calls(tmp_path, model_dir, rows), 240))

    names = {tool.name for tool in listed.tools}
    assert names >= {"create_experiment", "validate_dataset", "estimate_experiment", "evaluate_model", "submit_run", "monitor_run", "write_report"}
    schema = next(tool for tool in listed.tools if tool.name == "evaluate_model").input_schema
    assert schema["required"] == ["experiment_id", "target"]
    assert schema["properties"]["target"]["description"].startswith("'base'")
    assert too_early.is_error
    assert "call `validate_dataset` first" in too_early.content[0].text
    assert not validated.is_error, validated.content[0].text
    assert "rows" in validated.content[0].text
    assert "Expected wall time" in estimated.content[0].text and "0 USD" in estimated.content[0].text
    assert "validate" in json.loads(inspected.content[0].text)["completed_stages"]
    assert unknown.is_error
    assert "No experiment 'no-such-experiment'" in unknown.content[0].text
