"""Tests for finding llama.cpp's converter and quantizer in old and new folder layouts."""

import pytest

from autotrain_agent.errors import ConversionError
from autotrain_agent.llama_cpp_tools import resolve_llama_cpp_tools

HELP_SCRIPT = "#!/bin/sh\necho 'usage: tool [options]'\n"


def write_tool(path, text=HELP_SCRIPT):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_old_layout_is_resolved(tmp_path):
    converter = write_tool(tmp_path / "convert-hf-to-gguf.py", "print('usage: convert')\n")
    quantizer = write_tool(tmp_path / "quantize")

    tools = resolve_llama_cpp_tools(tmp_path)

    assert (tools.converter, tools.quantizer) == (converter, quantizer)
    assert tools.llama_cpp_python_version


def test_new_layout_is_resolved(tmp_path):
    converter = write_tool(tmp_path / "convert_hf_to_gguf.py", "print('usage: convert')\n")
    quantizer = write_tool(tmp_path / "build" / "bin" / "llama-quantize")

    tools = resolve_llama_cpp_tools(tmp_path)

    assert (tools.converter, tools.quantizer) == (converter, quantizer)


def test_folder_without_tools_names_what_was_tried(tmp_path):
    with pytest.raises(ConversionError) as caught:
        resolve_llama_cpp_tools(tmp_path)

    message = str(caught.value)
    assert str(tmp_path) in message
    assert "convert_hf_to_gguf.py, convert-hf-to-gguf.py" in message
    assert "build/bin/llama-quantize" in message
    assert "quantize)" in message


def test_quantizer_that_fails_help_is_skipped(tmp_path):
    write_tool(tmp_path / "convert_hf_to_gguf.py", "print('usage: convert')\n")
    write_tool(tmp_path / "llama-quantize", "#!/bin/sh\nexit 3\n")

    with pytest.raises(ConversionError, match="no working a quantizer"):
        resolve_llama_cpp_tools(tmp_path)
