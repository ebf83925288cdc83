"""Tests for the `export_model` tool, the vocab-only tokenizer preflight and the report's Export section."""

import pytest

from autotrain_agent.backends.local import LocalBackend
from autotrain_agent.config import Settings
from autotrain_agent.context import ExperimentContext
from autotrain_agent.errors import (
    ConversionError,
    StateError,
    UnsupportedTokenizerError,
)
from autotrain_agent.recipes import make_plan
from autotrain_agent.state import Checkpoint, Experiment, Run, Stage, with_export_stage
from autotrain_agent.store import ExperimentStore
from autotrain_agent.tools import validate
from autotrain_agent.tools.export import export_model
from autotrain_agent.tools.validate import check_tokenizer_converts


def make_ctx(tmp_path, *, model_path=None, checkpoint=None):
    plan = make_plan("improve code solving")
    plan.stages = with_export_stage(plan.stages)
    experiment = Experiment(id="exp", goal="improve code solving", plan=plan, model_path=model_path)
    if checkpoint is not None:
        experiment.runs.append(
            Run(
                run_id="run-1", title="SFT run 1", status="succeeded", output_dir=str(tmp_path / "run-1"),
                trackio_project="p", trackio_run="r", checkpoints=[Checkpoint(step=2, path=str(checkpoint))],
            )
        )
    return ExperimentContext(
        experiment=experiment,
        store=ExperimentStore(tmp_path / "training_runs"),
        settings=Settings(output_dir=tmp_path),
        backend=LocalBackend(tmp_path / "jobs"),
        echo=lambda line: None,
    )


def raising(error):
    """Return a stand-in function that raises `error` whatever it is called with."""

    def raise_error(*args):
        raise error

    return raise_error


def test_export_without_succeeded_run_is_rejected(tmp_path):
    ctx = make_ctx(tmp_path, model_path=str(tmp_path))

    with pytest.raises(StateError, match="no succeeded run"):
        export_model(ctx)


def test_tokenizer_preflight_classifies_unknown_pre_tokenizer(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    checksum = "cd" * 32
    converter = tmp_path / "llama.cpp"
    write_tool(converter / "quantize", HELP_SCRIPT)
    (converter / "gguf-py").mkdir(parents=True)
    (converter / "convert_hf_to_gguf.py").write_text(
        "import sys\n"
        "if '--help' in sys.argv: print('usage: convert'); sys.exit(0)\n"
        "print('WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!', file=sys.stderr)\n"
        f"print('WARNING:hf-to-gguf:** chkhsh:  {checksum}', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(converter))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    ctx = make_ctx(tmp_path)

    with pytest.raises(UnsupportedTokenizerError, match=checksum):
        check_tokenizer_converts(ctx, tmp_path / "model")


HELP_SCRIPT = "#!/bin/sh\necho 'usage: tool [options]'\n"
# A converter that answers `--help` and otherwise writes its arguments to `--outfile`, as a vocabulary would be.
STUB_CONVERTER = """import sys
if "--help" in sys.argv:
    print("usage: convert")
    sys.exit(0)
with open(sys.argv[sys.argv.index("--outfile") + 1], "w") as stream:
    stream.write(" ".join(sys.argv[1:]))
"""


def write_tool(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_model(folder):
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.parametrize(("converter_name", "quantizer_name"), [
    ("convert-hf-to-gguf.py", "quantize"),
    ("convert_hf_to_gguf.py", "build/bin/llama-quantize"),
])
def test_preflight_resolves_llama_cpp_tools_in_old_and_new_layouts(tmp_path, monkeypatch, converter_name,
                                                                   quantizer_name):
    pytest.importorskip("llama_cpp")
    folder = tmp_path / "llama.cpp"
    converter = write_tool(folder / converter_name, STUB_CONVERTER)
    quantizer = write_tool(folder / quantizer_name, HELP_SCRIPT)
    (folder / "gguf-py").mkdir()
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(folder))
    ctx = make_ctx(tmp_path)

    vocab_file = check_tokenizer_converts(ctx, write_model(tmp_path / "model"))

    journal = {entry["event"]: entry for entry in ctx.store.read_journal("exp")}
    resolved = journal["llama_cpp_tools_resolved"]
    assert (resolved["converter"], resolved["quantizer"]) == (str(converter), str(quantizer))
    assert resolved["llama_cpp_python"] not in ("", "unknown")
    assert "--vocab-only" in vocab_file.read_text()


def test_preflight_without_llama_cpp_tools_fails_before_training(tmp_path, monkeypatch):
    folder = tmp_path / "empty-llama.cpp"
    folder.mkdir()
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(folder))
    ctx = make_ctx(tmp_path)

    with pytest.raises(ConversionError) as caught:
        check_tokenizer_converts(ctx, write_model(tmp_path / "model"))

    message = str(caught.value)
    assert str(folder) in message
    assert "convert_hf_to_gguf.py, convert-hf-to-gguf.py" in message
    assert "build/bin/llama-quantize" in message and "quantize)" in message
    assert not (ctx.folder / "export" / "vocab-preflight.gguf").exists()


def test_validation_stops_on_tokenizer_before_data(tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path)
    monkeypatch.setattr(validate, "_resolve_model", lambda ctx: tmp_path)
    monkeypatch.setattr(validate, "check_tokenizer_converts", raising(UnsupportedTokenizerError("chkhsh ab")))
    monkeypatch.setattr(validate, "_read_rows", lambda ctx: pytest.fail("data prepared before the tokenizer preflight"))

    with pytest.raises(UnsupportedTokenizerError, match="chkhsh ab"):
        validate.validate_dataset(ctx)


def test_validation_skips_tokenizer_preflight_without_export(tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path)
    ctx.experiment.plan.stages = [stage for stage in ctx.experiment.plan.stages if stage != Stage.EXPORT]
    calls = []
    monkeypatch.setattr(validate, "_resolve_model", lambda ctx: tmp_path)
    monkeypatch.setattr(validate, "check_tokenizer_converts", lambda ctx, model: calls.append(model))
    monkeypatch.setattr(validate, "_read_rows", raising(RuntimeError("stop after the preflight")))

    with pytest.raises(RuntimeError, match="stop after the preflight"):
        validate.validate_dataset(ctx)

    assert calls == []


@pytest.mark.slow
def test_lora_run_exports_with_report_section(tiny_llama_dir, converter_cache, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    adapter = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter.save_pretrained(tmp_path / "adapter")
    ctx = make_ctx(tmp_path, model_path=str(tiny_llama_dir), checkpoint=tmp_path / "adapter")
    ctx.settings = Settings(output_dir=tmp_path, cache_dir=converter_cache)

    summary = export_model(ctx, "run-1", ("Q4_K_M",))

    record = ctx.experiment.export
    report = ctx.report_path.read_text()
    assert Stage.EXPORT in ctx.experiment.completed_stages
    assert [f.quant_type for f in record.files] == ["F16", "Q4_K_M"]
    assert record.files[0].greedy_match is True
    assert "exp-q4_k_m.gguf" in summary
    assert "## Export" in report
    assert f"llama-server -m {record.files[1].path}" in report
    assert any(d.action == "merge the adapter before GGUF conversion" for d in ctx.experiment.decisions)
    assert record.merge_base == "training base"
    assert record.merge_parity["training base"]["token_agreement"] == 1.0
    assert "Merge parity with the adapter on its training base" in report


def test_export_takes_the_best_checkpoint_else_the_last(tmp_path):
    from autotrain_agent.tools.export import checkpoint_to_export

    run = Run(run_id="run-1", title="SFT run 1", status="succeeded", output_dir=str(tmp_path), trackio_project="p",
              trackio_run="r", checkpoints=[Checkpoint(step=10, path="c10"), Checkpoint(step=20, path="c20")])

    last = checkpoint_to_export(run)
    run.best_checkpoint_path = "c10"

    assert (last.name, checkpoint_to_export(run).name) == ("c20", "c10")
