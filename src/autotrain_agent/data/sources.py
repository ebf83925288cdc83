"""Load a dataset reference (Hub id, local file or folder) and map known formats onto a `messages` column."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
from datasets.exceptions import DatasetNotFoundError

from autotrain_agent.data.chat_format import (
    UnknownRoleError,
    is_message_list,
    is_sharegpt_turns,
    prompt_completion_to_messages,
    sharegpt_to_messages,
)
from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".arrow": "arrow"}
"""The `datasets` builder that reads each supported file suffix."""

_KEPT_COLUMNS = ("messages", "tools")


def load_dataset_rows(
    reference: str,
    *,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    streaming_sample: bool = False,
) -> datasets.Dataset:
    """Load one split of a dataset from a local file, a local folder or the Hugging Face Hub.

    A reference that names an existing path is read locally: a JSONL, JSON, CSV, Parquet or Arrow file, a folder
    written by `Dataset.save_to_disk`, or a folder of such files (files named after splits, such as
    `test.jsonl`, select the split). Anything else is treated as a Hub dataset id.

    Args:
        reference: Hub dataset id (`open-r1/codeforces-cots`) or local path.
        split: Split to load.
        config: Dataset configuration (subset) on the Hub, such as `solutions_py`. Ignored for local paths.
        limit: Keep at most this many rows from the start of the split. `None` keeps all rows.
        streaming_sample: Stream the Hub dataset and read only the first `limit` rows instead of downloading it.

    Raises:
        DatasetError: If the path or split is missing, the file cannot be read, a JSON file is a bare list of
            turn lists, or the Hub cannot be reached.
    """
    if limit is not None and limit < 1:
        raise DatasetError(f"`limit` must be a positive integer or None, got {limit!r}.")
    if streaming_sample and limit is None:
        raise DatasetError("`streaming_sample=True` needs a `limit`; pass the number of rows to read.")

    path = Path(reference).expanduser()
    if path.exists():
        dataset = _load_local(path, split=split)
    elif looks_like_path(reference):
        raise DatasetError(f"Dataset file or folder not found: {reference!r}; check the path.")
    else:
        dataset = load_hub_dataset(reference, split=split, config=config, limit=limit, streaming=streaming_sample)

    if limit is not None and len(dataset) > limit:
        dataset = dataset.select(range(limit))
    logger.debug("Loaded %d rows from %s (split %s)", len(dataset), reference, split)
    return dataset


def load_hub_dataset(
    reference: str, *, split: str, config: str | None, limit: int | None = None, streaming: bool = False
) -> datasets.Dataset:
    """Load a split through `datasets.load_dataset`, as for a Hub id (a local folder in Hub layout works too).

    Raises:
        DatasetError: If the Hub cannot be reached, the dataset or split does not exist, or a config is needed.
    """
    try:
        if streaming:
            stream = datasets.load_dataset(reference, config, split=split, streaming=True)
            return datasets.Dataset.from_list(list(stream.take(limit)))
        return datasets.load_dataset(reference, config, split=split)
    except DatasetNotFoundError as err:
        raise DatasetError(
            f"Dataset {reference!r} was not found on the Hub or is gated; check the id and your access: {err}"
        ) from err
    except ConnectionError as err:
        raise DatasetError(
            f"The Hugging Face Hub is unreachable, so dataset {reference!r} cannot be loaded; "
            "pass a local JSONL, JSON, CSV, Parquet or Arrow file or folder instead."
        ) from err
    except ValueError as err:
        # `datasets` raises ValueError for an unknown split and for a missing config name.
        raise DatasetError(f"Cannot load split {split!r} (config {config!r}) of dataset {reference!r}: {err}") from err


def looks_like_path(reference: str) -> bool:
    """Tell whether a reference that names no existing file is meant as a local path rather than a Hub id."""
    return (
        reference.startswith((".", "/", "~"))
        or Path(reference).suffix.lower() in FILE_BUILDERS
        or reference.count("/") > 1
    )


def _load_local(path: Path, *, split: str) -> datasets.Dataset:
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        return _load_saved(path, split=split)
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            supported = ", ".join(sorted(FILE_BUILDERS))
            raise DatasetError(f"Unsupported dataset file type {path.suffix!r} for {str(path)!r}; use {supported}.")
        if path.suffix.lower() == ".json":
            _reject_bare_turn_lists(path)
        return _read_with_builder(builder, str(path), split=split, data_files={split: str(path)})

    for json_file in sorted(path.glob("*.json")):
        _reject_bare_turn_lists(json_file)
    return _read_with_builder(str(path), str(path), split=split)


def _load_saved(path: Path, *, split: str) -> datasets.Dataset:
    saved = datasets.load_from_disk(str(path))
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DatasetError(f"Split {split!r} not found in {str(path)!r}; it has {sorted(saved)}.")
        return saved[split]
    return saved


def _read_with_builder(builder: str, shown: str, *, split: str, data_files: dict | None = None) -> datasets.Dataset:
    try:
        return datasets.load_dataset(builder, data_files=data_files, split=split)
    except ValueError as err:
        raise DatasetError(f"Cannot read split {split!r} from {shown!r}: {err}") from err
    except (datasets.exceptions.DatasetGenerationError, OSError) as err:
        raise DatasetError(f"Cannot read dataset {shown!r}; check that the file is valid: {err}") from err


def _reject_bare_turn_lists(path: Path) -> None:
    """Raise when a JSON file's top level is a list of turn lists, which has no column name to map."""
    try:
        with path.open(encoding="utf-8") as file:
            top_level = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    if isinstance(top_level, list) and top_level and all(isinstance(item, list) for item in top_level):
        raise DatasetError(
            f"{str(path)!r} is a JSON list of turn lists with no column name, so its format is ambiguous. "
            'Convert it explicitly to JSONL rows such as {"messages": [{"role": "user", "content": "..."}, ...]} '
            'or {"conversations": [{"from": "human", "value": "..."}, ...]}.'
        )


def to_chat_messages(dataset: datasets.Dataset) -> datasets.Dataset:
    """Map a dataset in a known format onto a `messages` column for SFT.

    Known formats, checked in this order: a `messages` column (kept as is, as in `open-r1/codeforces-cots`);
    ShareGPT `conversations` with `from`/`value` turns; `prompt` with `completion`, or `prompt` with `generation`
    (the raw model output in `open-r1/codeforces-cots`); `instruction` with optional `input` and `output`
    (Alpaca). The result has a `messages` column, plus `tools` when the source has it; other columns are dropped.

    Raises:
        DatasetError: If no known format matches, or a ShareGPT row has a role outside `human`, `gpt`,
            `assistant`, `system` (the error names the row, counted from 1).
    """
    columns = set(dataset.column_names)
    if "messages" in columns:
        converted = dataset
    elif "conversations" in columns:
        converted = dataset.map(_sharegpt_row, with_indices=True, desc="ShareGPT to messages")
    elif "prompt" in columns and ({"completion", "generation"} & columns):
        answer_column = "completion" if "completion" in columns else "generation"
        converted = dataset.map(
            lambda row: {"messages": prompt_completion_to_messages(row["prompt"], row[answer_column])},
            desc="prompt/completion to messages",
        )
    elif {"instruction", "output"} <= columns:
        converted = dataset.map(_alpaca_row, desc="instruction/output to messages")
    else:
        raise DatasetError(
            f"No known chat format in columns {sorted(columns)}. Expected `messages`, `conversations`, "
            "`prompt` + `completion`, `prompt` + `generation` or `instruction` + `output`; rename columns with a "
            "column mapping. A `text` column trains as language modelling and needs no messages."
        )
    return converted.remove_columns([c for c in converted.column_names if c not in _KEPT_COLUMNS])


def _sharegpt_row(row: dict, index: int) -> dict:
    turns = row["conversations"]
    if not is_sharegpt_turns(turns):
        if is_message_list(turns):
            return {"messages": turns}
        raise DatasetError(f"Row {index + 1}: `conversations` is not a list of `from`/`value` turns.")
    try:
        return {"messages": sharegpt_to_messages(turns)}
    except UnknownRoleError as err:
        raise DatasetError(
            f"Row {index + 1}: unknown role {err.role!r} in `conversations[{err.turn_index}].from`; "
            "known roles are human, gpt, assistant and system. Fix or drop the row."
        ) from err


def _alpaca_row(row: dict) -> dict:
    prompt = row["instruction"]
    if row.get("input"):
        prompt = f"{prompt}\n\n{row['input']}"
    return {"messages": prompt_completion_to_messages(prompt, row["output"])}
