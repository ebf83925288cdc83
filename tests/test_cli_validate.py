"""`autotrain-agent validate`, the streamed Hub sample, and the prepared rows that reach the training file."""

import json

import datasets
import pytest

from autotrain_agent.cli import main
from autotrain_agent.config import Settings
from autotrain_agent.data.sampling import read_validation_sample, stream_hub_sample
from autotrain_agent.errors import DatasetError
from autotrain_agent.loop import open_experiment
from autotrain_agent.recipes import PlanOverrides, make_plan
from autotrain_agent.report import render_report
from autotrain_agent.testing import build_tiny_chat_model
from autotrain_agent.tools.validate import validate_dataset as validate_tool

USER = {"role": "user", "content": "what color is the sky"}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path):
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def preference_rows(count=3):
    return [{"prompt": f"question {i}", "chosen": "good answer", "rejected": "bad answer"} for i in range(count)]


def sharegpt(*pairs):
    return {"conversations": [{"from": role, "value": text} for role, text in pairs], "id": "x"}


# --- command line --------------------------------------------------------------------------------------------------


def test_ready_dataset_exits_0(tmp_path, capsys):
    path = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())

    status = main(["validate", str(path), "--method", "dpo"])

    out = capsys.readouterr().out
    assert status == 0
    assert "ready for DPO" in out
    assert "format:    preference (fits DPO)" in out
    assert "3 (exact, from line count); checked all of them" in out


def test_broken_rows_named_from_1(tmp_path, capsys):
    rows = preference_rows(4)
    rows[1]["rejected"] = rows[1]["chosen"]
    rows[3]["chosen"] = ""
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)

    status = main(["validate", str(path), "--method", "dpo"])

    out = capsys.readouterr().out
    assert status == 0
    assert "rows counted from 1" in out
    assert "Row 2: `chosen` equals `rejected`" in out
    assert "Row 4: `chosen` or `rejected` is empty" in out
    assert "Dropped 2 of 4 checked rows" in out


def test_alias_columns_suggest_map_flag(tmp_path, capsys):
    path = write_jsonl(tmp_path / "data.jsonl", [{"question": "a", "answer": "b"}])

    status = main(["validate", str(path), "--method", "sft"])

    out = capsys.readouterr().out
    assert status == 1
    assert "needs mapping for SFT: pass --map question=prompt,answer=completion" in out


def test_map_flag_applies_mapping(tmp_path, capsys):
    rows = [{"question": "q", "good_response": "b", "bad_response": "c"}] * 2
    path = write_jsonl(tmp_path / "data.jsonl", rows)

    status = main(["validate", str(path), "--method", "dpo", "--json",
                   "--map", "question=prompt,good_response=chosen,bad_response=rejected"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["verdict"] == "ready"
    assert document["applied_mapping"] == {"question": "prompt", "good_response": "chosen",
                                           "bad_response": "rejected"}
    assert document["conversions"][0].startswith("Renamed columns")


def test_json_document_is_stable(tmp_path, capsys):
    rows = preference_rows(2) + [{"prompt": "q", "chosen": "same", "rejected": "same"}]
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)

    status = main(["validate", str(path), "--method", "dpo", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    for key in ("dataset", "verdict", "method", "detected_format", "fitting_methods", "num_rows", "count_source",
                "num_checked", "num_rejected", "problems", "suggested_mapping", "applied_mapping", "conversions"):
        assert key in document
    assert document["num_rows"] == 3
    assert document["problems"] == [{
        "code": "identical_completions",
        "message": "Row 3: `chosen` equals `rejected`, so the pair teaches nothing; drop or fix the row.",
        "rows": [3],
        "severity": "error",
    }]


def test_incompatible_exits_1(tmp_path, capsys):
    path = write_jsonl(tmp_path / "text.jsonl", [{"text": "hello"}])

    status = main(["validate", str(path), "--method", "dpo", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert document["verdict"] == "incompatible"
    assert document["problems"][0]["code"] == "incompatible_format"


def test_sample_size_is_stated(tmp_path, capsys):
    path = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(10))

    main(["validate", str(path), "--method", "dpo", "--sample-size", "4"])

    assert "10 (exact, from line count); checked a sample of 4" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "ppo"], "Unknown method 'ppo'"),  # unknown method
        (["--method", "dpo", "--sample-size", "0"], "--sample-size"),  # empty sample
        (["--method", "dpo", "--max-length", "64"], "needs `--model`"),  # lengths need a tokenizer
        (["--method", "dpo", "--map", "question"], "Invalid `--map` pair"),  # pair without '='
    ],
)
def test_bad_flags_exit_2(argv, message, tmp_path, capsys):
    path = write_jsonl(tmp_path / "prefs.jsonl", preference_rows())

    status = main(["validate", str(path), *argv])

    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_unreachable_hub_exits_2(monkeypatch, capsys):
    monkeypatch.setattr("autotrain_agent.hub.is_hub_reachable", lambda: False)

    status = main(["validate", "org/name", "--method", "sft"])

    err = capsys.readouterr().err
    assert status == 2
    assert "Hub is unreachable" in err


def test_missing_file_exits_2(tmp_path, capsys):
    status = main(["validate", str(tmp_path / "absent.jsonl"), "--method", "sft"])

    err = capsys.readouterr().err
    assert status == 2
    assert "not found" in err
    assert "Traceback" not in err


def test_unknown_flag_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", str(tmp_path / "a.jsonl"), "--method", "sft", "--no-such-flag"])

    assert exit_info.value.code == 2


def test_mixed_types_named_by_row(tmp_path, capsys):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": 7}, {"prompt": "d", "completion": "e"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)

    status = main(["validate", str(path), "--method", "sft", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["problems"][0]["code"] == "mixed_types"
    assert document["problems"][0]["rows"] == [2]


def test_tokenizer_lengths_reported(tmp_path, capsys):
    model = build_tiny_chat_model(tmp_path / "model")
    rows = [{"messages": [USER, {"role": "assistant", "content": "blue"}]}] * 3
    path = write_jsonl(tmp_path / "chat.jsonl", rows)

    status = main(["validate", str(path), "--method", "sft", "--model", str(model), "--max-length", "8"])

    out = capsys.readouterr().out
    assert status == 0
    assert "tokens:    min" in out
    assert "3 over max_length" in out


# --- samples: Parquet metadata, streamed Hub datasets ---------------------------------------------------------


def test_parquet_count_from_metadata(tmp_path):
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list([{"text": str(i)} for i in range(50)]).to_parquet(str(path))

    sample = read_validation_sample(str(path), sample_size=7)

    assert sample.num_rows == 50
    assert sample.count_source == "Parquet metadata"
    assert [row["text"] for row in sample.rows] == [str(i) for i in range(7)]


def test_hub_layout_folder_streams_sample(tmp_path, monkeypatch):
    cache = tmp_path / "datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    folder = tmp_path / "org-prefs" / "data"
    folder.mkdir(parents=True)
    datasets.Dataset.from_list(preference_rows(40)).to_parquet(str(folder / "train-00000-of-00001.parquet"))

    sample = stream_hub_sample(str(tmp_path / "org-prefs"), split="train", config=None, sample_size=5)

    assert len(sample.rows) == 5
    assert sample.rows[0] == preference_rows(1)[0]
    assert not list(cache.rglob("*.arrow"))


def test_gated_hub_dataset_has_clear_message(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    def refuse(*args, **kwargs):
        raise DatasetNotFoundError("Dataset 'org/private' is a gated dataset on the Hub.")

    monkeypatch.setattr(datasets, "load_dataset", refuse)

    with pytest.raises(DatasetError, match="private, gated or does not exist.*hf auth login"):
        stream_hub_sample("org/private", split="train", config=None, sample_size=5)


def test_gated_hub_dataset_exits_2(monkeypatch, capsys):
    import httpx
    from huggingface_hub.errors import GatedRepoError

    request = httpx.Request("GET", "https://huggingface.co/api/datasets/org/private")

    def refuse(*args, **kwargs):
        raise GatedRepoError("Access to dataset org/private is restricted.",
                             response=httpx.Response(403, request=request))

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr("autotrain_agent.hub.is_hub_reachable", lambda: True)

    status = main(["validate", "org/private", "--method", "sft"])

    err = capsys.readouterr().err
    assert status == 2
    assert "private, gated" in err
    assert "Traceback" not in err


# --- prepared rows reach the training file ---------------------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")


def open_context(tmp_path, model, rows_path, *, method="sft", mapping=None):
    overrides = PlanOverrides(model=str(model), dataset=str(rows_path), column_mapping=mapping)
    plan = make_plan("improve code solving with SFT", overrides)
    plan.method = method
    settings = Settings(output_dir=tmp_path / "work", cache_dir=tmp_path / "cache", progress=False)
    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    return ctx


def test_sharegpt_rows_converted_in_training_file(tmp_path, tiny_model):
    rows = [sharegpt(("human", "hello"), ("gpt", "hi")), sharegpt(("human", "a"), ("bot", "b")),
            sharegpt(("system", "s"), ("human", "q"), ("gpt", "r"))]
    ctx = open_context(tmp_path, tiny_model, write_jsonl(tmp_path / "chat.jsonl", rows))

    validate_tool(ctx)

    written = read_jsonl(ctx.experiment.dataset_path)
    assert written == [
        {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "r"}]},
    ]
    validation = ctx.experiment.validation
    assert validation["verdict"] == "ready"
    assert validation["applied_mapping"]["roles"] == {"human": "user", "gpt": "assistant"}
    assert any("Dropped 1 of 3" in conversion for conversion in validation["conversions"])
    report = render_report(ctx.experiment)
    assert "- **Validation:** ready for SFT" in report
    assert "changed: Converted 2 rows of ShareGPT" in report
    assert "rows kept: 2 of 3 checked (1 dropped)" in report


def test_implicit_prompts_explicit_in_training_file(tmp_path, tiny_model):
    rows = [{"chosen": [USER, {"role": "assistant", "content": "blue"}],
             "rejected": [USER, {"role": "assistant", "content": "green"}], "source": "x"}]
    ctx = open_context(tmp_path, tiny_model, write_jsonl(tmp_path / "prefs.jsonl", rows), method="dpo")

    validate_tool(ctx)

    written = read_jsonl(ctx.experiment.dataset_path)
    assert written == [{"prompt": [USER], "chosen": [{"role": "assistant", "content": "blue"}],
                        "rejected": [{"role": "assistant", "content": "green"}]}]


def test_plan_mapping_applied_to_training_file(tmp_path, tiny_model):
    rows = [{"question": "what color", "answer": "blue"}] * 2
    ctx = open_context(tmp_path, tiny_model, write_jsonl(tmp_path / "qa.jsonl", rows),
                       mapping={"question": "prompt", "answer": "completion"})

    validate_tool(ctx)

    written = read_jsonl(ctx.experiment.dataset_path)
    assert written == [{"prompt": "what color", "completion": "blue"}] * 2
    assert ctx.experiment.validation["applied_mapping"] == {"question": "prompt", "answer": "completion"}


def test_unmapped_columns_stop_validation(tmp_path, tiny_model):
    rows = [{"question": "what color", "answer": "blue"}]
    ctx = open_context(tmp_path, tiny_model, write_jsonl(tmp_path / "qa.jsonl", rows))

    with pytest.raises(DatasetError, match="needs_mapping.*--map question=prompt,answer=completion"):
        validate_tool(ctx)

    assert ctx.experiment.dataset_path is None
    assert ctx.experiment.validation["verdict"] == "needs_mapping"


def test_mostly_broken_dataset_is_incompatible(tmp_path):
    from autotrain_agent.data.validation import validate_dataset

    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}

    result = validate_dataset([good, bad, bad, bad], "sft")

    assert result.verdict == "incompatible"
    assert any(problem.code == "too_many_rows_dropped" for problem in result.problems)


def test_mixed_row_formats_report_rows(tmp_path):
    from autotrain_agent.data.validation import validate_dataset

    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    pair = {"prompt": "x", "completion": "y"}

    result = validate_dataset([chat, chat, pair], "sft")

    broken = [problem for problem in result.problems if problem.code == "broken_row"]
    assert broken
    assert broken[0].rows == [3]
