"""Tests for choosing the merged model that best reproduces an adapter on the base it was trained on."""

import copy

import pytest

from autotrain_agent.errors import ConversionError
from autotrain_agent.merge_parity import choose_merge
from autotrain_agent.report import render_report
from autotrain_agent.state import DatasetSpec, Experiment, ExportRecord, Plan


class ByteTokenizer:
    """Tokenizes text as its UTF-8 bytes, which fit the tiny model's 256-token vocabulary."""

    def __call__(self, text, return_tensors="pt"):
        import torch

        return {"input_ids": torch.tensor([list(text.encode("utf-8"))])}


@pytest.fixture(scope="module")
def merge_candidates():
    """The adapter on a noisy training base, and its merges onto the clean base and onto the noisy base."""
    import torch
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        set_peft_model_state_dict,
    )
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
    torch.manual_seed(0)
    clean = LlamaForCausalLM(config).eval()
    noisy = copy.deepcopy(clean)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in noisy.parameters():
            # Stands in for 4-bit rounding of the training base.
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    reference = get_peft_model(noisy, lora).eval()
    adapter_state = get_peft_model_state_dict(reference)
    on_clean = get_peft_model(copy.deepcopy(clean), lora)
    set_peft_model_state_dict(on_clean, adapter_state)
    return {
        "reference": reference,
        "clean base": on_clean.merge_and_unload().eval(),
        "training base": copy.deepcopy(reference).merge_and_unload().eval(),
    }


def test_training_base_merge_is_chosen(merge_candidates):
    candidates = {name: merge_candidates[name] for name in ("clean base", "training base")}

    choice = choose_merge(merge_candidates["reference"], candidates, ByteTokenizer())

    assert choice.chosen == "training base"
    assert choice.parity["training base"].kl_divergence < choice.parity["clean base"].kl_divergence
    assert choice.parity["training base"].token_agreement == 1.0


def test_merge_below_parity_threshold_is_rejected(merge_candidates):
    with pytest.raises(ConversionError, match="clean base: KL"):
        choose_merge(merge_candidates["reference"], {"clean base": merge_candidates["clean base"]}, ByteTokenizer(), max_kl=1e-6)


def test_report_shows_parity_of_each_candidate(merge_candidates):
    choice = choose_merge(
        merge_candidates["reference"],
        {name: merge_candidates[name] for name in ("clean base", "training base")},
        ByteTokenizer(),
    )
    plan = Plan(goal="g", base_model="o/m", dataset=DatasetSpec(reference="o/d"))
    record = ExportRecord(
        merged_dir="merged",
        merge_base=choice.chosen,
        merge_parity={name: {"token_agreement": p.token_agreement, "kl_divergence": p.kl_divergence} for name, p in choice.parity.items()},
    )

    report = render_report(Experiment(id="e", goal="g", plan=plan, export=record))

    assert "merged onto the training base" in report
    for name, parity in choice.parity.items():
        assert f"{name}: token agreement {parity.token_agreement:.3f}, KL {parity.kl_divergence:.3g}" in report
