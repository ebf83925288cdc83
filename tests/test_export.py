"""Tests for the export planner, the pre-conversion checks, the checked merge save and GGUF verification."""

import json
import shutil

import pytest

from autotrain_agent.errors import ConversionError
from autotrain_agent.export import (
    check_weights_before_conversion,
    export_model,
    plan_export,
)
from autotrain_agent.gguf_verify import compare_token_ids
from autotrain_agent.merge import check_reload_logits, save_merged_model


def write_adapter_config(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **fields}))
    return folder


def write_safetensors(path, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


def tiny_tied_model_with_trained_head():
    """A tied Llama with two added tokens whose head, untied in memory, was changed as by training."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.resize_token_embeddings(66)
    head = model.get_input_embeddings().weight.detach().clone() + 0.5
    model.lm_head.weight = torch.nn.Parameter(head)
    return model


def test_adapter_gguf_allowed_for_attention_only(tmp_path):
    adapter = write_adapter_config(tmp_path / "a", target_modules=["q_proj", "v_proj"])

    plan = plan_export(adapter)

    assert plan.kind == "adapter_gguf"


def test_trained_head_forces_merge(tmp_path):
    adapter = write_adapter_config(tmp_path / "a", target_modules=["q_proj", "lm_head"])

    plan = plan_export(adapter)

    assert plan.kind == "merge"
    assert "lm_head" in plan.reason


def test_saved_embeddings_force_merge(tmp_path):
    adapter = write_adapter_config(tmp_path / "a", target_modules=["q_proj"], modules_to_save=["embed_tokens", "lm_head"])

    plan = plan_export(adapter)

    assert plan.kind == "merge"
    assert "embed_tokens" in plan.reason


def test_quantization_state_is_rejected_by_name(tmp_path):
    import torch

    write_safetensors(
        tmp_path / "model.safetensors",
        {
            "model.layers.0.mlp.down_proj.weight": torch.zeros(64, 16, dtype=torch.uint8),
            "model.layers.0.mlp.down_proj.SCB": torch.ones(64),
            "model.norm.weight": torch.ones(32),
        },
    )

    with pytest.raises(ConversionError, match="quantization state") as caught:
        check_weights_before_conversion(tmp_path)

    assert "down_proj.weight (integer weight, U8)" in str(caught.value)
    assert "down_proj.SCB (quantization state)" in str(caught.value)
    assert "model.norm.weight" not in str(caught.value)


@pytest.mark.parametrize("name", ["layer.weight.absmax", "layer.weight.quant_map", "layer.weight.quant_state.bitsandbytes__nf4"])
def test_bitsandbytes_side_tensors_are_rejected(tmp_path, name):
    import torch

    write_safetensors(tmp_path / "model.safetensors", {name: torch.ones(4)})

    with pytest.raises(ConversionError, match=name.replace(".", r"\.")):
        check_weights_before_conversion(tmp_path)


def test_float_weights_pass_preflight(tmp_path):
    import torch

    write_safetensors(tmp_path / "model.safetensors", {"model.norm.weight": torch.ones(32), "lm_head.weight": torch.ones(8, 32, dtype=torch.float16)})

    check_weights_before_conversion(tmp_path)


def test_embedding_smaller_than_tokenizer_is_rejected(tiny_llama_dir, tmp_path):
    import torch

    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model", ignore=shutil.ignore_patterns("*.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    write_safetensors(folder / "model.safetensors", {"model.embed_tokens.weight": torch.zeros(100, 8)})
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))

    with pytest.raises(ConversionError, match="tokenizer has 49152 tokens but the embedding only 100 rows"):
        check_weights_before_conversion(folder)


def test_token_comparison_names_first_difference():
    message = compare_token_ids("don't", [1, 2, 3, 4], [1, 2, 9, 4])

    assert message is not None
    assert "\"don't\"" in message
    assert "at token 2" in message


def test_token_comparison_accepts_equal_ids():
    assert compare_token_ids("café", [5, 6], [5, 6]) is None


def test_tied_save_of_trained_head_fails_reload(tmp_path):
    from safetensors.torch import load_file

    model = tiny_tied_model_with_trained_head()
    model.save_pretrained(tmp_path / "faulty")
    # Savers that honour the tie flag (transformers 4, llama.cpp's converter) keep only the input embedding.
    weights = load_file(str(tmp_path / "faulty" / "model.safetensors"))
    del weights["lm_head.weight"]
    write_safetensors(tmp_path / "faulty" / "model.safetensors", weights)

    with pytest.raises(ConversionError, match="different logits after reloading"):
        check_reload_logits(model, tmp_path / "faulty")


def test_merge_save_unties_trained_head(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    model = tiny_tied_model_with_trained_head()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")))

    saved = save_merged_model(model, tokenizer, tmp_path / "merged")

    assert json.loads((saved / "config.json").read_text())["tie_word_embeddings"] is False
    assert check_reload_logits(model, saved) < 1e-4


def test_failed_f16_verification_stops_quantization(tmp_path, monkeypatch):
    import torch

    from autotrain_agent import export
    from autotrain_agent.gguf_verify import FileVerification

    write_safetensors(tmp_path / "model.safetensors", {"model.norm.weight": torch.ones(4)})
    monkeypatch.setattr(export, "convert_hf_to_gguf", lambda model_dir, out_file, **kwargs: out_file)
    monkeypatch.setattr(
        export, "verify_gguf_file", lambda *args, **kwargs: FileVerification(problems=["'café' differs at token 1"])
    )
    monkeypatch.setattr(export, "quantize_gguf", lambda *args, **kwargs: pytest.fail("a failed F16 file was quantized"))

    with pytest.raises(ConversionError, match="'café' differs at token 1") as caught:
        export_model(tmp_path, tmp_path / "gguf", name="tiny", cache_dir=tmp_path)

    assert "not quantized or published" in str(caught.value)


@pytest.mark.slow
def test_tiny_model_exports_verified_files(tiny_llama_dir, converter_cache, tmp_path):
    record = export_model(tiny_llama_dir, tmp_path / "gguf", name="tiny", cache_dir=converter_cache, quant_types=("Q4_K_M", "Q8_0"))

    f16, q4, q8 = record.files
    assert [f.quant_type for f in record.files] == ["F16", "Q4_K_M", "Q8_0"]
    assert f16.probes_match
    assert q4.probes_match
    assert q8.probes_match
    assert f16.greedy_match is True
    assert q4.tensor_types.get("Q4_K", 0) > 0
    assert q4.fallback_tensors == 0
    assert 4.0 < q4.bits_per_weight < 7.0
    assert q8.size_bytes < f16.size_bytes
    assert q4.sample


@pytest.mark.slow
def test_export_rejects_quantized_weights_before_converting(tiny_llama_dir, converter_cache, tmp_path):
    import torch

    folder = shutil.copytree(tiny_llama_dir, tmp_path / "model")
    write_safetensors(folder / "extra.safetensors", {"model.layers.0.self_attn.q_proj.weight.absmax": torch.ones(4)})

    with pytest.raises(ConversionError, match="absmax"):
        export_model(folder, tmp_path / "gguf", name="tiny", cache_dir=converter_cache)

    assert not (tmp_path / "gguf").exists()
