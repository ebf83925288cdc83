"""Parameter counts from `--params`, local weights, Hub metadata or the model name."""

import json
import logging
import struct

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.model_size import count_local_parameters, parse_params_flag, resolve_parameter_count


@pytest.mark.parametrize(
    ("text", "count"),
    [("7B", 7_000_000_000), ("0.6b", 600_000_000), ("135M", 135_000_000), ("1234", 1234)],
)
def test_params_flag_parses(text, count):
    assert parse_params_flag(text) == count


@pytest.mark.parametrize("text", ["seven", "7T", "", "0B"])
def test_params_flag_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="--params"):
        parse_params_flag(text)


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("meta-llama/Llama-2-7b-hf", 7_000_000_000),  # the 2 is a version, never the size
        ("Qwen/Qwen3-0.6B", 600_000_000),
        ("Qwen/Qwen2.5-1.5B-Instruct", 1_500_000_000),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 135_000_000),
    ],
)
def test_name_fallback_warns(name, count, caplog):
    with caplog.at_level(logging.WARNING):
        resolved, source = resolve_parameter_count(name)

    assert resolved == count
    assert source == "model name"
    assert "--params" in caplog.text


def write_safetensors(path, shapes):
    header = {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded)


def test_local_weights_counted_from_headers(tmp_path):
    write_safetensors(tmp_path / "model-00001.safetensors", {"a": [10, 20], "b": [5]})
    write_safetensors(tmp_path / "model-00002.safetensors", {"c": [3, 3, 3]})

    assert count_local_parameters(tmp_path) == 200 + 5 + 27
    assert resolve_parameter_count(str(tmp_path)) == (232, f"weights in {tmp_path}")


def test_params_flag_wins_over_name():
    assert resolve_parameter_count("Qwen/Qwen3-0.6B", params_override="7B") == (7_000_000_000, "--params")


def test_hub_metadata_used_when_reachable():
    class Info:
        class safetensors:
            total = 751_632_384

    class Api:
        def model_info(self, reference, expand):
            return Info()

    assert resolve_parameter_count("Qwen/Qwen3-0.6B", api=Api()) == (751_632_384, "Hub safetensors metadata")


def test_unknown_size_asks_for_params():
    with pytest.raises(ConfigError, match="Pass `--params`"):
        resolve_parameter_count("someone/mystery-model")
