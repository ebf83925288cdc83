"""Tests for model cards and publishing, against a fake Hub server on 127.0.0.1 through the real client."""

import pytest
import yaml
from fake_hub_server import FakeHub

from autotrain_agent.errors import PublishError
from autotrain_agent.publish import build_targets, publish_to_folder, publish_to_hub
from autotrain_agent.state import Checkpoint


def card_metadata(card: str) -> dict:
    return yaml.safe_load(card.split("---")[1])


def test_card_carries_validated_metadata(exported_experiment):
    targets = build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id="me/code-sft-GGUF")

    metadata = card_metadata(targets[0].card)
    assert metadata["base_model"] == exported_experiment.plan.base_model
    assert metadata["license"] == "apache-2.0"
    assert metadata["pipeline_tag"] == "text-generation"
    assert "autotrain-agent" in metadata["tags"]
    assert metadata["model-index"][0]["results"][0]["metrics"][0] == {"type": "pass@1", "value": 0.1}
    assert "llama-server -hf me/code-sft-GGUF:Q4_K_M" in targets[1].card


def test_card_with_local_base_model_is_rejected(exported_experiment):
    exported_experiment.plan.base_model = "/models/local"

    with pytest.raises(PublishError, match="`base_model` '/models/local' is not a Hub id"):
        build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id=None)


def test_card_without_license_is_rejected(exported_experiment):
    exported_experiment.plan.base_model = "someone/unknown-model"

    with pytest.raises(PublishError, match="pass `--license`"):
        build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id=None)


def test_publish_without_export_is_rejected(exported_experiment):
    exported_experiment.export = None

    with pytest.raises(PublishError, match="autotrain-agent export exp"):
        build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id=None)


def test_folder_layout_mirrors_hub(exported_experiment, tmp_path):
    targets = build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id="me/code-sft-GGUF")

    written = publish_to_folder(targets, tmp_path / "out")

    assert sorted(p.name for p in (tmp_path / "out" / "me" / "code-sft").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert sorted(p.name for p in (tmp_path / "out" / "me" / "code-sft-GGUF").iterdir()) == ["README.md", "model-f16.gguf", "model-q4_k_m.gguf"]
    assert written["me/code-sft"] == str(tmp_path / "out" / "me" / "code-sft")


def test_hub_upload_commits_weights_then_card(exported_experiment):
    from huggingface_hub import HfApi

    targets = build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id="me/code-sft-GGUF")
    with FakeHub() as hub:
        urls = publish_to_hub(targets, HfApi(endpoint=hub.endpoint, token="hf_fake_test_token"))

    assert hub.created == ["me/code-sft", "me/code-sft-GGUF"]
    assert [(repo, summary) for repo, summary, _ in hub.commits] == [
        ("me/code-sft", "Upload weights from autotrain-agent"),
        ("me/code-sft", "Add model card"),
        ("me/code-sft-GGUF", "Upload weights from autotrain-agent"),
        ("me/code-sft-GGUF", "Add model card"),
    ]
    assert hub.files("me/code-sft-GGUF")["model-q4_k_m.gguf"] == b"GGUFQ4_K_M"
    assert card_metadata(hub.files("me/code-sft")["README.md"].decode())["base_model"] == exported_experiment.plan.base_model
    assert "me/code-sft" in hub.preuploads
    assert urls["me/code-sft"].endswith("/me/code-sft")


def test_rejected_card_keeps_uploaded_weights(exported_experiment):
    from huggingface_hub import HfApi

    targets = build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id=None)
    with FakeHub(reject_cards=True) as hub, pytest.raises(PublishError, match="weights are uploaded") as caught:
        publish_to_hub(targets, HfApi(endpoint=hub.endpoint, token="hf_fake_test_token"))

    assert "valid license identifier" in str(caught.value)
    assert [summary for _, summary, _ in hub.commits] == ["Upload weights from autotrain-agent"]
    assert set(hub.files("me/code-sft")) == {"config.json", "model.safetensors"}


def test_publish_command_records_repositories(exported_experiment, tmp_path, monkeypatch, capsys):
    from autotrain_agent.cli import main
    from autotrain_agent.report import render_report
    from autotrain_agent.store import ExperimentStore

    store = ExperimentStore(tmp_path / "training_runs")
    store.save(exported_experiment, event="created", details={})
    monkeypatch.setenv("HF_TOKEN", "hf_fake_test_token")
    with FakeHub() as hub:
        status = main([
            "publish", "exp", "--repo", "me/code-sft", "--gguf-repo", "me/code-sft-GGUF",
            "--endpoint", hub.endpoint, "--output-dir", str(tmp_path),
        ])

    saved = store.load("exp")
    assert status == 0
    assert saved.export.published == {"model": "me/code-sft", "gguf": "me/code-sft-GGUF"}
    assert "llama-server -hf me/code-sft-GGUF:Q4_K_M" in render_report(saved)
    assert f"me/code-sft-GGUF: {hub.endpoint}/me/code-sft-GGUF" in capsys.readouterr().out


def test_adapter_upload_takes_the_best_checkpoints_adapter(exported_experiment, tmp_path):
    best = tmp_path / "checkpoint-10"
    best.mkdir()
    (best / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (best / "adapter_model.safetensors").write_bytes(b"lora")
    run = exported_experiment.runs[0]
    run.checkpoints.insert(0, Checkpoint(step=10, path=str(best)))
    run.best_checkpoint_path = str(best)

    targets = build_targets(exported_experiment, repo_id="me/code-sft-lora", gguf_repo_id=None, upload_adapter=True)

    assert sorted(targets[0].files) == ["adapter_config.json", "adapter_model.safetensors"]
    assert "library_name: peft" in targets[0].card


def test_adapter_upload_of_full_weights_is_rejected(exported_experiment):
    with pytest.raises(PublishError, match="not a LoRA adapter"):
        build_targets(exported_experiment, repo_id="me/code-sft", gguf_repo_id=None, upload_adapter=True)
