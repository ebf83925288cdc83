"""The smolagents tools: complete schemas, so any smolagents agent (or MCP client) can call them."""

from smolagents import Tool

from autotrain_agent.agent_tools import TOOL_CLASSES


def test_every_tool_documents_every_input():
    for tool_class in TOOL_CLASSES:
        assert issubclass(tool_class, Tool)
        assert tool_class.description.strip(), tool_class.name
        assert tool_class.output_type == "string"
        for name, spec in tool_class.inputs.items():
            assert spec.get("type") and spec.get("description"), f"{tool_class.name}.{name}"


def test_tool_names_are_unique():
    names = [tool_class.name for tool_class in TOOL_CLASSES]

    assert len(names) == len(set(names))
