"""The pre-launch checkpoint round trip: a model that cannot be saved as a checkpoint blocks the launch."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from autotrain_agent import checkpoint_round_trip
from autotrain_agent.checkpoint_round_trip import check_checkpoint_round_trip
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.errors import CheckpointSaveError, ConfigError
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.state import Experiment, Stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.tools import submit
from autotrain_agent.tools.submit import submit_run


def tiny_tied_model():
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def share_storage_of_untied_weights(model):
    mlp = model.model.layers[0].mlp
    mlp.up_proj.weight = mlp.gate_proj.weight
    return model


class RecordingBackend:
    name = "local"
    is_free = True

    def __init__(self):
        self.submitted = []

    def submit_job(self, *, run_id, script, config_path, workdir, env=None):
        self.submitted.append(run_id)
        return f"job-{run_id}"

    def find_jobs(self, *, run_id):
        return []


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "tiny-tied"
    tiny_tied_model().save_pretrained(folder)
    return folder


def make_ctx(tmp_path, model_dir):
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text("{}\n")
    plan = make_plan("improve code solving", PlanOverrides(model=str(model_dir), dataset=str(dataset)))
    experiment = Experiment(id="exp", goal=plan.goal, plan=plan, dataset_path=str(dataset), model_path=str(model_dir))
    experiment.completed_stages += [Stage.PLAN, Stage.VALIDATE, Stage.EVALUATE_BASE]
    return ExperimentContext(
        experiment=experiment,
        store=ExperimentStore(tmp_path / "training_runs"),
        settings=Settings(output_dir=tmp_path),
        backend=RecordingBackend(),
        echo=lambda line: None,
    )


def test_tied_model_round_trip_keeps_logits(tmp_path):
    model = tiny_tied_model()

    check_checkpoint_round_trip(model, tmp_path / "round-trip")

    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert not (tmp_path / "round-trip" / "checkpoint").exists()


def test_shared_untied_weights_fail_round_trip(tmp_path):
    model = share_storage_of_untied_weights(tiny_tied_model())

    with pytest.raises(CheckpointSaveError, match="shared tensors"):
        check_checkpoint_round_trip(model, tmp_path / "round-trip")


def test_submit_records_passed_round_trip(tmp_path, model_dir):
    ctx = make_ctx(tmp_path, model_dir)

    submit_run(ctx)

    assert ctx.backend.submitted == ["run-1"]
    assert (ctx.folder / "checkpoint-round-trip" / "passed.json").is_file()
    assert "checkpoint_round_trip_passed" in (ctx.folder / "journal.jsonl").read_text()


def test_failed_round_trip_submits_nothing(tmp_path, model_dir, monkeypatch):
    ctx = make_ctx(tmp_path, model_dir)
    monkeypatch.setattr(checkpoint_round_trip, "load_model", lambda path: share_storage_of_untied_weights(tiny_tied_model()))

    with pytest.raises(CheckpointSaveError, match="first save"):
        submit_run(ctx)

    assert ctx.backend.submitted == []
    assert ctx.experiment.runs[0].status == "pending"


def test_linted_run_config_submits_nothing(tmp_path, model_dir, monkeypatch):
    config = model_dir / "config.json"
    config.write_text(config.read_text().replace('"model_type": "llama"', '"model_type": "gemma2"'))
    ctx = make_ctx(tmp_path, model_dir)
    ctx.experiment.plan.hyperparameters.per_device_train_batch_size = 4
    create_run = submit._new_run
    monkeypatch.setattr(submit, "_new_run", lambda ctx: _with_fp16(create_run(ctx)))

    with pytest.raises(ConfigError, match="fp16"):
        submit_run(ctx)

    assert ctx.backend.submitted == []


def _with_fp16(run):
    run.config["fp16"] = True
    return run
