"""A LoRA adapter that changes nothing is caught before its score is reported."""

import pytest

from autotrain_agent.errors import AdapterNotAppliedError
from autotrain_agent.evaluation.adapter_check import MIN_LOGIT_DISTANCE, check_model_differs_from_base
from autotrain_agent.evaluation.scoring import prepare_adapter, score_humaneval
from autotrain_agent.testing import build_tiny_chat_model


@pytest.fixture(scope="module")
def tiny_adapters(tmp_path_factory):
    """A tiny chat model and two LoRA adapters for it: B matrices all zero, and B matrices random."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    base_dir = build_tiny_chat_model(root / "base")
    adapters = {}
    for kind in ("zero", "random"):
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
        if kind == "random":
            torch.manual_seed(1)
            for name, parameter in peft_model.named_parameters():
                if "lora_B" in name:
                    torch.nn.init.normal_(parameter, std=0.5)
        peft_model.save_pretrained(root / kind)
        adapters[kind] = root / kind
    return base_dir, adapters


def test_zero_adapter_raises_before_scoring(tiny_adapters, tmp_path):
    base_dir, adapters = tiny_adapters
    model = prepare_adapter(adapters["zero"], base_dir, engine="transformers", merged_dir=tmp_path / "m", label="zero")

    with pytest.raises(AdapterNotAppliedError, match="the adapter changes nothing"):
        score_humaneval(model, engine="transformers", limit=1, output_dir=tmp_path, cache_dir=tmp_path / "cache",
                        max_new_tokens=4, progress=False)

    assert not (tmp_path / "zero-humaneval.jsonl").exists()


def test_zero_adapter_merged_is_caught_too(tiny_adapters, tmp_path):
    base_dir, adapters = tiny_adapters
    model = prepare_adapter(adapters["zero"], base_dir, engine="llama.cpp", merged_dir=tmp_path / "merged", label="zero")

    with pytest.raises(AdapterNotAppliedError, match="same logits"):
        check_model_differs_from_base(base_dir, model_dir=model.model_dir)


def test_random_adapter_is_scored(tiny_adapters, tmp_path):
    base_dir, adapters = tiny_adapters
    model = prepare_adapter(adapters["random"], base_dir, engine="transformers", merged_dir=tmp_path / "m",
                            label="random")

    distance = check_model_differs_from_base(base_dir, adapter_dir=adapters["random"])
    result = score_humaneval(model, engine="transformers", limit=1, output_dir=tmp_path, cache_dir=tmp_path / "cache",
                             max_new_tokens=4, progress=False)

    assert distance > MIN_LOGIT_DISTANCE
    assert result.num_problems == 1
    assert (tmp_path / "random-humaneval.jsonl").is_file()


def test_merged_copy_is_redone_after_adapter_changes(tiny_adapters, tmp_path):
    import os
    import shutil

    base_dir, adapters = tiny_adapters
    adapter_dir = tmp_path / "adapter"
    shutil.copytree(adapters["zero"], adapter_dir)
    merged_dir = tmp_path / "merged"
    prepare_adapter(adapter_dir, base_dir, engine="llama.cpp", merged_dir=merged_dir, label="a")
    shutil.rmtree(adapter_dir)
    shutil.copytree(adapters["random"], adapter_dir)
    later = (merged_dir / "config.json").stat().st_mtime + 10
    for item in adapter_dir.iterdir():
        os.utime(item, (later, later))

    model = prepare_adapter(adapter_dir, base_dir, engine="llama.cpp", merged_dir=merged_dir, label="a")

    assert check_model_differs_from_base(base_dir, model_dir=model.model_dir) > MIN_LOGIT_DISTANCE
