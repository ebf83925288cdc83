"""`autotrain-agent evaluate`: a model folder or a LoRA adapter scored through the real harness."""

import json

import pytest

from autotrain_agent.cli import main
from autotrain_agent.testing import build_tiny_chat_model


@pytest.fixture(scope="module")
def tiny_model_and_adapter(tmp_path_factory):
    """A tiny chat model and a LoRA adapter for it with random B matrices."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("cli-evaluate")
    base_dir = build_tiny_chat_model(root / "base")
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                                LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    for name, parameter in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    peft_model.save_pretrained(root / "adapter")
    return base_dir, root / "adapter"


def test_evaluate_model_folder_prints_json(tiny_model_and_adapter, tmp_path, capsys):
    base_dir, _ = tiny_model_and_adapter

    status = main(["evaluate", str(base_dir), "--limit", "2", "--engine", "transformers", "--max-new-tokens", "4",
                   "--output-dir", str(tmp_path), "--json", "--no-progress"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert summary["num_problems"] == 2
    assert summary["metric"] == "pass@1"
    assert summary["harness"] == "autotrain_agent.evaluation.sandbox"
    assert len(open(summary["details_path"]).read().splitlines()) == 2


def test_evaluate_adapter_with_samples_reports_pass_at_k(tiny_model_and_adapter, tmp_path, capsys):
    base_dir, adapter_dir = tiny_model_and_adapter

    status = main(["evaluate", str(adapter_dir), "--base-model", str(base_dir), "--limit", "1", "--engine",
                   "transformers", "--samples", "2", "--temperature", "0.8", "--max-new-tokens", "4",
                   "--output-dir", str(tmp_path), "--json", "--no-progress"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert summary["samples_per_problem"] == 2
    assert set(summary["pass_at_k"]) == {"pass@1"}
    assert summary["sampling"]["temperature"] == 0.8


@pytest.mark.parametrize(("extra", "message"), [
    (["--samples", "3"], "needs `--temperature`"),  # greedy decoding repeats one sample
    (["--limit", "-1"], "`--limit` must be 0"),  # negative count
    (["--benchmark", "no_such_bench"], "known benchmarks: humaneval"),  # unknown name
])
def test_evaluate_bad_input_exits_2(extra, message, tmp_path, capsys):
    status = main(["evaluate", str(tmp_path), *extra, "--output-dir", str(tmp_path)])

    assert status == 2
    assert message in capsys.readouterr().err
