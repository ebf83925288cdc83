"""Greedy or sampled text generation with transformers or llama.cpp, behind one interface for benchmark harnesses.

Both engines render chat prompts with the Hugging Face tokenizer's chat template, so a base model, a fine-tuned
model and its GGUF export see the same prompt text. Greedy decoding is the default; a `Sampling` setting turns on
temperature and nucleus sampling with a seed, so a repeated call gives the same text on the same engine and machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from autotrain_agent.errors import ConfigError, EvaluationError

logger = logging.getLogger(__name__)

Prompt = str | list[dict[str, str]]
"""Raw text, or chat messages that are rendered with the model's chat template and a generation prompt."""

# Special tokens that end a turn or a document in common chat formats (ChatML, Llama 3, Gemma, Phi-3, Mistral).
_END_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
    "<eos>",
)

_SEED = 0


class Sampling(BaseModel):
    """Settings for sampled decoding; generators decode greedily when they get none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(gt=0)
    """Softmax temperature; lower is closer to greedy."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling: keep the smallest set of tokens whose probability sums to at least `top_p`."""
    seed: int = 0
    """Random seed, set at the start of each `complete` call."""


class TextGenerator(Protocol):
    """An engine that completes prompts, greedily or by sampling."""

    name: str
    """Engine name for reports, e.g. "llama.cpp" or "transformers"."""

    def complete(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int, stop: Sequence[str], sampling: Sampling | None = None
    ) -> list[str]:
        """Generate for each prompt and return only the new text, cut before the first stop string.

        Decoding is greedy when `sampling` is `None`.
        """
        ...


def stop_sequences_for(tokenizer) -> list[str]:
    """List the tokenizer's end-of-sequence token and the special tokens that end a turn, such as `<|im_end|>`.

    Args:
        tokenizer: A Hugging Face tokenizer.

    Returns:
        Token strings in a stable order, EOS first, without duplicates.
    """
    special_tokens = set(tokenizer.all_special_tokens) | {
        token.content for token in tokenizer.added_tokens_decoder.values() if token.special
    }
    candidates = [tokenizer.eos_token, *(token for token in _END_TOKENS if token in special_tokens)]
    return list(dict.fromkeys(token for token in candidates if token))


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Return `text` up to, not including, the earliest occurrence of any stop string."""
    end = len(text)
    for marker in stop:
        if marker:
            index = text.find(marker)
            if index != -1:
                end = min(end, index)
    return text[:end]


def _check_generation_arguments(max_new_tokens: int, stop: Sequence[str]) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"`max_new_tokens` must be a positive integer, got {max_new_tokens!r}.")
    if isinstance(stop, str):
        raise ConfigError(f"`stop` must be a sequence of strings, got the single string {stop!r}; wrap it in a list.")


def _render_prompt(tokenizer, prompt: Prompt, *, source: Path | None) -> tuple[str, bool]:
    """Return the prompt text and whether it is chat-rendered, in which case the template placed any BOS."""
    if isinstance(prompt, str):
        return prompt, False
    if tokenizer is None or not tokenizer.chat_template:
        raise ConfigError(
            f"A chat prompt needs a chat template, but the tokenizer from {str(source)!r} has none; "
            "pass raw text prompts, or a model folder whose tokenizer defines `chat_template`."
        )
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True), True


class TransformersGenerator:
    """Greedy batched generation with a transformers causal LM, optionally with a PEFT adapter applied.

    Limitations:
        Prompts are rendered with the tokenizer in `model_dir`, not one saved beside the adapter, so an adapter
        trained with added tokens or another chat template is prompted with the base template.
    """

    name = "transformers"

    def __init__(self, model_dir: Path, *, adapter_dir: Path | None = None, batch_size: int = 8) -> None:
        """Load the model and tokenizer from `model_dir` and apply the adapter in `adapter_dir`, if given.

        The model runs in float32 on CPU, or in its saved dtype on CUDA.

        Raises:
            ConfigError: If `batch_size` is not positive, or a folder lacks `config.json` or `adapter_config.json`.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ConfigError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if not (model_dir / "config.json").is_file():
            raise ConfigError(
                f"Model folder {str(model_dir)!r} has no `config.json`; pass a Hugging Face model folder."
            )
        if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
            raise ConfigError(
                f"Adapter folder {str(adapter_dir)!r} has no `adapter_config.json`; pass a folder saved by PEFT."
            )

        self.model_dir = model_dir
        self.adapter_dir = adapter_dir
        self.batch_size = batch_size
        self.tokens_generated = 0
        """New tokens generated so far, for throughput reports."""
        self.generation_s = 0.0
        """Seconds spent generating so far."""
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device)
        if adapter_dir is not None:
            from ..merge import load_adapter

            self.model = load_adapter(self.model, adapter_dir)
        self.model.eval()

    def complete(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int, stop: Sequence[str], sampling: Sampling | None = None
    ) -> list[str]:
        """Generate for each prompt in batches and return the new text cut before the first stop string.

        Decoding is greedy unless `sampling` is given, in which case torch's global seed is set to `sampling.seed`
        first. Generation for a sequence ends at the model's EOS token or at a stop string. The EOS token itself
        is never part of the returned text.

        Raises:
            ConfigError: If `max_new_tokens` is not positive, or a chat prompt is given for a model without a
                chat template.
        """
        import torch

        _check_generation_arguments(max_new_tokens, stop)
        if sampling is not None:
            torch.manual_seed(sampling.seed)

        completions: list[str] = []
        with tqdm(total=len(prompts), desc="transformers generation", unit="prompt", disable=None) as progress:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                completions.extend(
                    self._complete_batch(batch, max_new_tokens=max_new_tokens, stop=stop, sampling=sampling)
                )
                progress.update(len(batch))
        return completions

    def _complete_batch(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int, stop: Sequence[str], sampling: Sampling | None
    ) -> list[str]:
        import torch

        encoded = []
        for prompt in prompts:
            text, is_chat = _render_prompt(self.tokenizer, prompt, source=self.model_dir)
            encoded.append(self.tokenizer(text, add_special_tokens=not is_chat)["input_ids"])
        batch = self.tokenizer.pad({"input_ids": encoded}, padding=True, return_tensors="pt").to(self.device)
        options = {"stop_strings": list(stop), "tokenizer": self.tokenizer} if stop else {}
        if sampling is None:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=None)

        started = time.monotonic()
        with torch.inference_mode():
            output = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **options,
            )
        self.generation_s += time.monotonic() - started

        end_ids = self._end_token_ids()
        completions = []
        for row in output[:, batch["input_ids"].shape[1] :].tolist():
            length = next((index for index, token in enumerate(row) if token in end_ids), len(row))
            self.tokens_generated += length
            text = self.tokenizer.decode(row[:length], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            completions.append(cut_at_stop(text, stop))
        return completions

    def _end_token_ids(self) -> set[int]:
        configured = self.model.generation_config.eos_token_id
        ids = set(configured if isinstance(configured, list) else [configured])
        ids.add(self.tokenizer.eos_token_id)
        ids.discard(None)
        return ids


class LlamaCppGenerator:
    """Greedy or sampled generation with llama.cpp on a GGUF file, one prompt at a time."""

    name = "llama.cpp"

    def __init__(
        self,
        gguf_path: Path,
        *,
        chat_template_dir: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ) -> None:
        """Load a GGUF file with llama-cpp-python.

        Args:
            gguf_path: The model file.
            chat_template_dir: A Hugging Face tokenizer folder whose chat template renders chat prompts, normally
                the folder the GGUF was converted from. Without it, only raw text prompts are accepted.
            n_ctx: Context window in tokens, prompt and completion together.
            n_threads: CPU threads; `None` lets llama.cpp choose.

        Raises:
            ConfigError: If `gguf_path` does not exist, `n_ctx` is not positive, or llama-cpp-python is missing.
        """
        if not gguf_path.is_file():
            raise ConfigError(f"GGUF file {str(gguf_path)!r} does not exist; convert the model to GGUF first.")
        if n_ctx < 1:
            raise ConfigError(f"`n_ctx` must be a positive integer, got {n_ctx!r}.")
        try:
            import llama_cpp
        except ImportError as err:
            raise ConfigError(
                "llama-cpp-python is not installed; run `pip install 'autotrain-agent[offline]'`, "
                "or use `TransformersGenerator`."
            ) from err

        self.gguf_path = gguf_path
        self.chat_template_dir = chat_template_dir
        self.tokens_generated = 0
        """New tokens generated so far, for throughput reports."""
        self.generation_s = 0.0
        """Seconds spent generating so far."""
        self.tokenizer = None
        if chat_template_dir is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(chat_template_dir)
        self.llama = llama_cpp.Llama(
            model_path=str(gguf_path), n_ctx=n_ctx, n_threads=n_threads, seed=_SEED, verbose=False
        )

    def complete(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int, stop: Sequence[str], sampling: Sampling | None = None
    ) -> list[str]:
        """Generate for each prompt and return the new text cut before the first stop string.

        Decoding is greedy unless `sampling` is given; then every prompt's sampler starts from `sampling.seed`,
        with top-k off and no repetition penalty, as in the transformers engine.

        Chat prompts are tokenized with special tokens parsed and without an added BOS, because the template
        places it. Raw text gets a BOS when the GGUF vocabulary sets `tokenizer.ggml.add_bos_token`. Generation
        also ends at any end-of-generation token of the vocabulary.

        Raises:
            ConfigError: If `max_new_tokens` is not positive, or a chat prompt is given without
                `chat_template_dir`.
            EvaluationError: If a prompt does not fit in the context window.
        """
        _check_generation_arguments(max_new_tokens, stop)

        completions: list[str] = []
        for index, prompt in enumerate(tqdm(prompts, desc="llama.cpp generation", unit="prompt", disable=None)):
            text, is_chat = _render_prompt(self.tokenizer, prompt, source=self.chat_template_dir)
            tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=not is_chat, special=True)
            if len(tokens) >= self.llama.n_ctx():
                raise EvaluationError(
                    f"Prompt {index} has {len(tokens)} tokens, which does not fit in `n_ctx`={self.llama.n_ctx()}; "
                    "raise `n_ctx` or shorten the prompt."
                )
            completions.append(
                self._complete_tokens(tokens, max_new_tokens=max_new_tokens, stop=stop, sampling=sampling)
            )
        return completions

    def _complete_tokens(
        self, tokens: list[int], *, max_new_tokens: int, stop: Sequence[str], sampling: Sampling | None
    ) -> str:
        if sampling is None:
            decoding = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "seed": _SEED}
        else:
            # llama.cpp reads top_k <= 0 as "the whole vocabulary", which turns top-k off.
            decoding = {"temperature": sampling.temperature, "top_k": 0, "top_p": sampling.top_p, "seed": sampling.seed}
        started = time.monotonic()
        result = self.llama.create_completion(
            tokens,
            max_tokens=max_new_tokens,
            repeat_penalty=1.0,
            stop=list(stop) or None,
            **decoding,
        )
        self.generation_s += time.monotonic() - started
        self.tokens_generated += result["usage"]["completion_tokens"]
        return cut_at_stop(result["choices"][0]["text"], stop)

    def close(self) -> None:
        """Free the llama.cpp model and context now rather than at garbage collection."""
        self.llama.close()

    def __enter__(self) -> LlamaCppGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
