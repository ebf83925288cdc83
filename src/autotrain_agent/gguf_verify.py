"""Verify GGUF files against the Hugging Face model they came from, and measure what quantization produced.

Every file is loaded with llama.cpp and generates from a fixed prompt. Its vocabulary must turn each probe string
into the same token ids as the transformers tokenizer, it must carry the same chat template, and the F16 file's
greedy tokens must equal the transformers model's greedy tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConversionError
from .model_source import first_difference

logger = logging.getLogger(__name__)

# Digits, accents, an emoji, indented code and apostrophes: text where pre-tokenizer regexes and byte handling differ.
TOKEN_PROBES = (
    "1234567890 3.14159 2026",
    "café naïve résumé Zürich",
    "emoji: 😀🚀 done",
    "    def add(a, b):\n        return a + b",
    "don't it's we'll O'Brien",
)
GREEDY_PROMPTS = ("def fibonacci(n):", "The capital of France is")
GREEDY_NEW_TOKENS = 8

# Tensor types that a llama.cpp file type is made of when no tensor falls back. Norms and other 1-D tensors
# stay F32 in every file type and are not counted.
_EXPECTED_TENSOR_TYPES = {
    "Q4_K_M": {"Q4_K", "Q6_K"},
    "Q4_K_S": {"Q4_K", "Q5_K", "Q6_K"},
    "Q5_K_M": {"Q5_K", "Q6_K"},
    "Q5_K_S": {"Q5_K", "Q6_K"},
    "Q6_K": {"Q6_K"},
    "Q8_0": {"Q8_0"},
    "Q4_0": {"Q4_0", "Q6_K"},
    "Q5_0": {"Q5_0", "Q6_K"},
    "F16": {"F16"},
    "BF16": {"BF16"},
}


@dataclass(frozen=True)
class TensorStats:
    """Summary of a GGUF tensor table: tensor types, bits per weight and fallbacks."""

    tensor_types: dict[str, int]
    """Number of tensors of each GGUF tensor type."""
    bits_per_weight: float
    """Tensor bytes times 8 over the number of weights, over every tensor."""
    fallback_tensors: int | None
    """2-D tensors whose type is not one the file type is made of; `None` for a file type not in the table.

    It also counts tensors that llama.cpp stores in another type without logging a fallback. One example is a tied
    `token_embd.weight` stored as Q8_0 when its rows are not a multiple of 256. So the count can exceed the one in
    llama.cpp's log by one.
    """


@dataclass
class FileVerification:
    """The outcome of loading one GGUF file with llama.cpp and comparing it with transformers."""

    probes_match: bool = False
    """Every token probe gave the same ids in llama.cpp and transformers."""
    greedy_match: bool | None = None
    """Greedy tokens equal those of transformers; `None` where not compared (quantized files)."""
    sample: str = ""
    """The text generated from the fixed prompt."""
    problems: list[str] = field(default_factory=list)
    """Differences found, each naming the string and the first differing position."""


def read_tensor_stats(gguf_path: Path, *, quant_type: str) -> TensorStats:
    """Read a GGUF file's tensor table with the `gguf` package and count types, bits per weight and fallbacks."""
    import gguf

    reader = gguf.GGUFReader(gguf_path)
    counts: dict[str, int] = {}
    total_bytes = total_weights = 0
    expected = _EXPECTED_TENSOR_TYPES.get(quant_type.upper())
    fallbacks = 0
    for tensor in reader.tensors:
        type_name = tensor.tensor_type.name
        counts[type_name] = counts.get(type_name, 0) + 1
        total_bytes += int(tensor.n_bytes)
        total_weights += int(tensor.n_elements)
        is_matrix = sum(1 for size in tensor.shape if size > 1) >= 2
        if expected is not None and is_matrix and type_name not in expected:
            fallbacks += 1
    return TensorStats(
        tensor_types=dict(sorted(counts.items())),
        bits_per_weight=round(8 * total_bytes / max(total_weights, 1), 3),
        fallback_tensors=fallbacks if expected is not None else None,
    )


def compare_token_ids(text: str, expected: list[int], actual: list[int]) -> str | None:
    """Return a message naming `text` and the first differing position, or `None` when the id lists are equal."""
    position = first_difference(expected, actual)
    if position is None:
        return None
    return f"{text!r} differs at token {position}: transformers {expected}, llama.cpp {actual}"


def verify_gguf_file(
    gguf_path: Path, model_dir: Path, *, compare_greedy: bool, probes: tuple[str, ...] = TOKEN_PROBES
) -> FileVerification:
    """Load `gguf_path` with llama.cpp, generate from a fixed prompt and compare it with the model in `model_dir`.

    Differences are returned in `problems`, not raised, so that the caller decides; `export_model` raises.

    Args:
        gguf_path: The GGUF file to load.
        model_dir: The Hugging Face folder it was converted from.
        compare_greedy: Also compare greedy tokens with transformers (meant for F16 and BF16 files, where
            rounding rarely changes an argmax).
        probes: Strings whose token ids must match exactly.

    Raises:
        ConversionError: If llama.cpp cannot load the file or generates nothing.
    """
    import llama_cpp
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    try:
        llama = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=512, seed=0, verbose=False)
    except (ValueError, RuntimeError) as err:
        raise ConversionError(f"llama.cpp failed to load {str(gguf_path)!r}: {err}") from err
    verification = FileVerification()
    try:
        for probe in probes:
            expected = tokenizer(probe, add_special_tokens=True)["input_ids"]
            actual = llama.tokenize(probe.encode("utf-8"), add_bos=True, special=True)
            problem = compare_token_ids(probe, expected, actual)
            if problem:
                verification.problems.append(problem)
        verification.probes_match = not verification.problems
        if tokenizer.chat_template and llama.metadata.get("tokenizer.chat_template") != tokenizer.chat_template:
            verification.problems.append("the chat template is missing from the GGUF metadata or differs from transformers'")
        verification.sample = _generate_sample(llama)
        if compare_greedy:
            verification.greedy_match = _compare_greedy(llama, model_dir, tokenizer, verification.problems)
    finally:
        llama.close()
    return verification


def _generate_sample(llama) -> str:
    completion = llama.create_completion(GREEDY_PROMPTS[0], max_tokens=GREEDY_NEW_TOKENS, temperature=0.0, top_k=1)
    if completion["usage"]["completion_tokens"] == 0:
        raise ConversionError(f"llama.cpp generated no token from {GREEDY_PROMPTS[0]!r}; the file is unusable.")
    return completion["choices"][0]["text"]


def _compare_greedy(llama, model_dir: Path, tokenizer, problems: list[str]) -> bool:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    matched = True
    for prompt in GREEDY_PROMPTS:
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            output = model.generate(
                torch.tensor([prompt_ids]), max_new_tokens=GREEDY_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        expected = output[0, len(prompt_ids) :].tolist()
        llama.reset()
        actual = []
        for token in llama.generate(prompt_ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if len(actual) == len(expected) or token == llama.token_eos():
                break
            actual.append(token)
        problem = compare_token_ids(f"greedy continuation of {prompt!r}", expected, actual)
        if problem:
            matched = False
            problems.append(problem)
    return matched
