"""Build the smolagents model behind an LLM planner from a `--llm` spec such as `openai:qwen2.5-7b-instruct`.

Keys come from the providers' usual environment variables and stay inside the model's client: they are never
returned, stored in the experiment state, logged or written to the report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from smolagents.models import Model

from .errors import ConfigError

logger = logging.getLogger(__name__)

Provider = Literal["hf", "litellm", "openai", "transformers"]

# Local OpenAI-compatible servers (llama.cpp, vLLM) accept any key, but the `openai` client refuses to start
# without one. This placeholder is not a secret.
LOCAL_SERVER_KEY = "not-needed"


@dataclass(frozen=True)
class LlmSpec:
    """A parsed `--llm` value: which smolagents model class to build and for which model."""

    provider: Provider
    """`hf` (Inference Providers), `litellm`, `openai` (any OpenAI-compatible server) or `transformers`."""
    model: str
    """Model id for the provider, or a local folder for `transformers`."""
    base_url: str | None = None
    """Server URL for `openai` (default: the OpenAI API) and, optionally, for `litellm` and `hf`."""

    def describe(self) -> str:
        """Return the spec as text safe to store and show: provider, model and URL, never a key."""
        where = f" at {self.base_url}" if self.base_url else ""
        return f"{self.provider}:{self.model}{where}"


def parse_llm_spec(spec: str, *, base_url: str | None = None) -> LlmSpec:
    """Parse `PROVIDER:MODEL` into an `LlmSpec`.

    Args:
        spec: `hf:MODEL`, `litellm:MODEL`, `openai:MODEL` or `transformers:PATH`.
        base_url: The `--llm-base-url` value, for `openai`, `litellm` and `hf`.

    Raises:
        ConfigError: If the provider is unknown, the model is empty, or `base_url` is given for `transformers`.
    """
    provider, _, model = spec.partition(":")
    if provider not in get_args(Provider) or not model.strip():
        raise ConfigError(
            f"`--llm` must look like PROVIDER:MODEL with PROVIDER one of {', '.join(get_args(Provider))}, got {spec!r}. "
            "Example: --llm openai:smollm2 --llm-base-url http://127.0.0.1:8080/v1"
        )
    if provider == "transformers" and base_url:
        raise ConfigError(f"`--llm-base-url` does not apply to a local transformers model, got {base_url!r}.")
    return LlmSpec(provider=provider, model=model.strip(), base_url=base_url)  # type: ignore[arg-type]


def build_llm(spec: LlmSpec, *, max_tokens: int = 1024, temperature: float = 0.0) -> Model:
    """Return the smolagents model for `spec`, reading keys from the environment.

    Keys: `HF_TOKEN` (or the token saved by `hf auth login`) for `hf`; the variables LiteLLM reads for its provider
    (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...) for `litellm`; `OPENAI_API_KEY` for `openai`, optional when
    `base_url` points at a local server. `transformers` loads the model on this machine and needs none.

    Raises:
        ConfigError: If `max_tokens` is not positive, `openai` has neither a key nor a base URL, or a
            `transformers` path is not a folder.
    """
    if max_tokens <= 0:
        raise ConfigError(f"`--llm-max-tokens` must be a positive integer, got {max_tokens!r}.")
    generation = {"max_tokens": max_tokens, "temperature": temperature}
    if spec.provider == "hf":
        from smolagents import InferenceClientModel

        return InferenceClientModel(model_id=spec.model, base_url=spec.base_url, **generation)
    if spec.provider == "litellm":
        from smolagents import LiteLLMModel

        return LiteLLMModel(model_id=spec.model, api_base=spec.base_url, **generation)
    if spec.provider == "openai":
        from smolagents import OpenAIModel

        # llama.cpp's server accepts only string message contents, not lists of parts; OpenAI accepts both.
        return OpenAIModel(
            model_id=spec.model, api_base=spec.base_url, api_key=_openai_key(spec), flatten_messages_as_text=True, **generation
        )
    return _build_transformers_model(spec, max_new_tokens=max_tokens)


def _openai_key(spec: LlmSpec) -> str:
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if spec.base_url is None:
        raise ConfigError(
            f"`--llm {spec.provider}:{spec.model}` needs `OPENAI_API_KEY` in the environment, or `--llm-base-url` "
            "for a local OpenAI-compatible server."
        )
    return LOCAL_SERVER_KEY


def _build_transformers_model(spec: LlmSpec, *, max_new_tokens: int) -> Model:
    path = Path(spec.model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"`--llm transformers:PATH` needs a local Hugging Face model folder, got {spec.model!r}; "
            "for a Hub model use `hf:MODEL`."
        )
    from smolagents import TransformersModel

    return TransformersModel(model_id=str(path), device_map="cpu", max_new_tokens=max_new_tokens)
