"""Loading dataset references and mapping known formats onto `messages`."""

import json

import datasets
import pytest

from autotrain_agent.data.sources import load_dataset_rows, load_hub_dataset, to_chat_messages
from autotrain_agent.errors import DatasetError

CODEFORCES_ROW = {
    "id": "1A",
    "contest_id": 1,
    "title": "Theatre Square",
    "description": "Cover the square with flagstones.",
    "prompt": "Solve Theatre Square in Python.",
    "generation": "<think>ceil both sides</think>\n```python\nprint(1)\n```",
    "finish_reason": "stop",
    "messages": [
        {"role": "user", "content": "Solve Theatre Square in Python."},
        {"role": "assistant", "content": "<think>ceil both sides</think>\n```python\nprint(1)\n```"},
    ],
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_local_file_loads(tmp_path, suffix):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    path = tmp_path / f"rows{suffix}"
    frame = datasets.Dataset.from_list(rows)
    {".jsonl": frame.to_json, ".csv": frame.to_csv, ".parquet": frame.to_parquet}[suffix](str(path))

    loaded = load_dataset_rows(str(path))

    assert loaded.to_list() == rows


def test_save_to_disk_folder_loads(tmp_path):
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"text": "x"}])}).save_to_disk(tmp_path / "saved")

    loaded = load_dataset_rows(str(tmp_path / "saved"), split="test")

    assert loaded["text"] == ["x"]


def test_folder_split_selected_by_file_name(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"text": "train row"}])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "test row"}])

    loaded = load_dataset_rows(str(tmp_path), split="test")

    assert loaded["text"] == ["test row"]


def test_limit_keeps_first_rows(tmp_path):
    path = write_jsonl(tmp_path / "rows.jsonl", [{"text": str(i)} for i in range(5)])

    loaded = load_dataset_rows(str(path), limit=2)

    assert loaded["text"] == ["0", "1"]


def test_missing_path_raises(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset_rows(str(tmp_path / "absent.jsonl"))


def test_unreachable_hub_raises_with_hint(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/name' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", refuse)

    with pytest.raises(DatasetError, match="Hub is unreachable.*local"):
        load_dataset_rows("org/name")


def test_hub_path_reads_codeforces_layout(tmp_path):
    folder = tmp_path / "codeforces-cots" / "solutions_py"
    folder.mkdir(parents=True)
    datasets.Dataset.from_list([CODEFORCES_ROW] * 3).to_parquet(str(folder / "train-00000-of-00001.parquet"))

    loaded = load_hub_dataset(str(tmp_path / "codeforces-cots"), split="train", config=None)
    streamed = load_hub_dataset(str(tmp_path / "codeforces-cots"), split="train", config=None, limit=2,
                                streaming=True)

    assert len(loaded) == 3
    assert {"prompt", "generation", "messages"} <= set(loaded.column_names)
    assert len(streamed) == 2


def test_codeforces_rows_keep_messages():
    dataset = datasets.Dataset.from_list([CODEFORCES_ROW])

    converted = to_chat_messages(dataset)

    assert converted.column_names == ["messages"]
    assert converted[0]["messages"] == CODEFORCES_ROW["messages"]


def test_prompt_generation_becomes_messages():
    row = {k: v for k, v in CODEFORCES_ROW.items() if k != "messages"}

    converted = to_chat_messages(datasets.Dataset.from_list([row]))

    assert converted[0]["messages"] == CODEFORCES_ROW["messages"]


def test_prompt_completion_becomes_messages():
    converted = to_chat_messages(datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}]))

    assert converted[0]["messages"] == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]


def test_sharegpt_unknown_role_names_row():
    rows = [{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
            {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]}]

    with pytest.raises(DatasetError, match="Row 2: unknown role 'bot'"):
        to_chat_messages(datasets.Dataset.from_list(rows))


def test_unknown_columns_raise():
    with pytest.raises(DatasetError, match="No known chat format"):
        to_chat_messages(datasets.Dataset.from_list([{"foo": "a"}]))
