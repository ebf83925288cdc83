"""The plan linter: settings known to break training are flagged before launch, with the settings to change."""

import json

import pytest

from autotrain_agent.errors import ConfigError
from autotrain_agent.plan_lint import check_training_config, lint_training_config
from autotrain_agent.preflight import check_plan_inputs
from autotrain_agent.recipes import PlanOverrides, make_plan

GEMMA_FP16 = {"model_type": "gemma2", "fp16": True, "per_device_train_batch_size": 4, "attn_implementation": "sdpa"}


def test_gemma_fp16_sdpa_is_flagged():
    findings = lint_training_config(GEMMA_FP16)

    assert [finding.rule for finding in findings] == ["gemma-fp16-sdpa"]
    assert "`fp16`" in findings[0].message
    assert "`bf16`" in findings[0].message
    assert "`attn_implementation`" in findings[0].message
    assert "'eager'" in findings[0].message
    assert findings[0].changes == {"fp16": False, "bf16": True, "attn_implementation": "eager"}


@pytest.mark.parametrize(
    "changes",
    [
        {"fp16": False, "bf16": True},  # bf16 does not overflow
        {"attn_implementation": "eager"},  # eager attention
        {"per_device_train_batch_size": 1},  # no padding in a batch of one
        {"packing": True},  # packed batches carry no padding
        {"model_type": "llama"},  # another family
    ],
)
def test_safe_variants_pass(changes):
    assert lint_training_config({**GEMMA_FP16, **changes}) == []


def test_missing_attention_counts_as_sdpa():
    config = {key: value for key, value in GEMMA_FP16.items() if key != "attn_implementation"}

    assert len(lint_training_config(config)) == 1


def test_check_raises_config_error_naming_settings():
    with pytest.raises(ConfigError, match="fp16.*attn_implementation"):
        check_training_config({**GEMMA_FP16, "model_type": "gemma3"})


def test_preflight_passes_local_gemma_plan_in_fp32(tmp_path):
    model = tmp_path / "gemma"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gemma2"}))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{}\n")
    plan = make_plan("improve code solving", PlanOverrides(model=str(model), dataset=str(rows)))

    check_plan_inputs(plan, hub_reachable=False)
