"""`--llm` specs: parsing, and which smolagents model each one builds, with keys only from the environment."""

import pytest
from smolagents import InferenceClientModel, LiteLLMModel, OpenAIModel

from autotrain_agent.errors import ConfigError
from autotrain_agent.guarded_agent import normalize_arguments
from autotrain_agent.llm import LOCAL_SERVER_KEY, build_llm, parse_llm_spec


@pytest.mark.parametrize(
    ("spec", "model_class"),
    [
        ("hf:Qwen/Qwen2.5-7B-Instruct", InferenceClientModel),  # Inference Providers
        ("litellm:anthropic/claude-sonnet-4", LiteLLMModel),  # any LiteLLM route
    ],
)
def test_spec_builds_its_smolagents_model(spec, model_class, monkeypatch):
    if model_class is LiteLLMModel:
        pytest.importorskip("litellm")

    model = build_llm(parse_llm_spec(spec))

    assert isinstance(model, model_class)
    assert model.model_id == spec.partition(":")[2]


def test_openai_spec_takes_the_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-test-key")

    model = build_llm(parse_llm_spec("openai:gpt-4.1-mini"))

    assert isinstance(model, OpenAIModel)
    assert model.client.api_key == "sk-fake-test-key"


def test_openai_spec_with_a_local_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    model = build_llm(parse_llm_spec("openai:smollm2", base_url="http://127.0.0.1:8080/v1"))

    assert model.client.api_key == LOCAL_SERVER_KEY
    assert str(model.client.base_url).startswith("http://127.0.0.1:8080/v1")


def test_openai_spec_without_key_or_server_is_rejected(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_llm(parse_llm_spec("openai:gpt-4.1-mini"))


def test_describe_never_shows_a_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-test-key")

    spec = parse_llm_spec("openai:smollm2", base_url="http://127.0.0.1:8080/v1")

    assert spec.describe() == "openai:smollm2 at http://127.0.0.1:8080/v1"


@pytest.mark.parametrize(
    "spec",
    [
        "gpt-4",  # no provider
        "azure:gpt-4",  # unknown provider
        "openai:",  # empty model
    ],
)
def test_bad_spec_is_rejected(spec):
    with pytest.raises(ConfigError, match="PROVIDER:MODEL"):
        parse_llm_spec(spec)


def test_transformers_spec_needs_a_local_folder(tmp_path):
    with pytest.raises(ConfigError, match="local Hugging Face model folder"):
        build_llm(parse_llm_spec(f"transformers:{tmp_path / 'missing'}"))


@pytest.mark.parametrize(
    "raw",
    [
        [1, 2],  # a list
        "not json",  # prose
        '"just a string"',  # a JSON string that is not an object
    ],
)
def test_arguments_that_are_not_an_object_are_rejected(raw):
    with pytest.raises(ValueError, match="JSON object"):
        normalize_arguments(raw)


@pytest.mark.parametrize("raw", [None, "", {}])
def test_empty_arguments_become_an_empty_dict(raw):
    assert normalize_arguments(raw) == {}


def test_cli_rejects_a_bad_llm_spec_before_planning(capsys):
    from autotrain_agent.cli import main

    exit_code = main(["run", "improve code solving with SFT", "--llm", "gpt-4", "--plan-only"])

    assert exit_code == 2
    assert "PROVIDER:MODEL" in capsys.readouterr().err


def test_transformers_spec_loads_a_local_folder(tmp_path):
    from smolagents import TransformersModel

    from autotrain_agent.testing import build_tiny_chat_model

    folder = build_tiny_chat_model(tmp_path / "tiny-model")

    model = build_llm(parse_llm_spec(f"transformers:{folder}"), max_tokens=8)

    assert isinstance(model, TransformersModel)
    assert model.model_id == str(folder)
