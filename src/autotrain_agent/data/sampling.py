"""Read the row count and a bounded sample of a dataset for validation, without loading the whole dataset."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from autotrain_agent.errors import DatasetError

logger = logging.getLogger(__name__)


@dataclass
class DatasetSample:
    """The first rows of a dataset split and its total row count."""

    rows: list[dict]
    """The first rows of the split, as plain Python values (never coerced to one Arrow type)."""
    num_rows: int | None
    """Rows in the whole split; `None` when the source stores no count."""
    count_source: str
    """Origin of `num_rows`, such as `Parquet metadata`, `line count` or `Hub metadata`."""


def read_validation_sample(
    reference: str, *, split: str = "train", config: str | None = None, sample_size: int = 1000
) -> DatasetSample:
    """Read the row count and the first `sample_size` rows of a local file or folder, or of a Hub dataset.

    Memory stays bounded by the sample whatever the dataset size. Parquet files give their count from metadata
    and their rows from the first record batches. JSONL files are counted line by line and only the first lines
    are parsed, so validation reports rows whose value types differ instead of Arrow failing on the file. Hub
    datasets are streamed. JSON and CSV files, `save_to_disk` folders and Arrow files are read through
    `datasets`, which memory-maps Arrow data.

    Args:
        reference: Hub dataset id or local path.
        split: Split to read.
        config: Hub dataset configuration. Ignored for local paths.
        sample_size: Rows to read from the start of the split.

    Raises:
        DatasetError: If the path is missing or unreadable, a JSONL line is not a JSON object, the Hub dataset
            is private, gated, missing or unreachable, or `sample_size` is not positive.
    """
    if sample_size < 1:
        raise DatasetError(f"`sample_size` must be a positive integer, got {sample_size!r}.")
    path = Path(reference).expanduser()
    if path.is_file() and path.suffix.lower() == ".parquet":
        return _read_parquet_sample([path], sample_size)
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return _read_jsonl_sample(path, sample_size)
    if path.is_dir() and (files := _split_files(path, split, ".parquet")):
        return _read_parquet_sample(files, sample_size)

    # Imported here because `datasets` takes 1 to 2 s to import, longer than validating a Parquet sample.
    from autotrain_agent.data.sources import (
        FILE_BUILDERS,
        load_dataset_rows,
        looks_like_path,
    )

    if path.exists():
        dataset = load_dataset_rows(str(path), split=split)
        rows = [dict(row) for row in dataset.select(range(min(sample_size, len(dataset))))]
        return DatasetSample(rows=rows, num_rows=len(dataset), count_source="dataset length")
    if looks_like_path(reference) or path.suffix.lower() in FILE_BUILDERS:
        raise DatasetError(f"Dataset file or folder not found: {reference!r}; check the path.")
    return stream_hub_sample(reference, split=split, config=config, sample_size=sample_size)


_SPLIT_NAMES = ("train", "test", "validation", "valid", "dev", "eval")


def _split_files(folder: Path, split: str, suffix: str) -> list[Path]:
    """Return the files of `split` in a folder: those whose name starts with the split name, or every file when
    no file name starts with a split name."""
    files = sorted(folder.rglob(f"*{suffix}"))
    named = [file for file in files if file.name.startswith(split)]
    if named or any(file.name.startswith(_SPLIT_NAMES) for file in files):
        return named
    return files


def _read_parquet_sample(files: list[Path], sample_size: int) -> DatasetSample:
    import pyarrow.parquet as pq

    num_rows, rows = 0, []
    for file in files:
        try:
            # A buffered stream without pre-buffering reads only the pages of the first rows, not whole column
            # chunks. On 100,000-row groups this was 5 to 10 times faster (2-core machine, bench/validate_parquet.py).
            parquet = pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 20)
        except (OSError, ValueError) as err:
            raise DatasetError(f"Cannot read Parquet file {str(file)!r}; check that the file is valid: {err}") from err
        num_rows += parquet.metadata.num_rows
        for group in range(parquet.metadata.num_row_groups):
            if len(rows) >= sample_size:
                break
            for batch in parquet.iter_batches(batch_size=sample_size, row_groups=[group], use_threads=False):
                rows.extend(batch.slice(0, sample_size - len(rows)).to_pylist())
                if len(rows) >= sample_size:
                    break
    return DatasetSample(rows=rows, num_rows=num_rows, count_source="Parquet metadata")


def _read_jsonl_sample(path: Path, sample_size: int) -> DatasetSample:
    rows, num_rows = [], 0
    with path.open("rb") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            num_rows += 1
            if len(rows) < sample_size:
                rows.append(_parse_jsonl_line(line, line_number, path))
    return DatasetSample(rows=rows, num_rows=num_rows, count_source="line count")


def _parse_jsonl_line(line: bytes, line_number: int, path: Path) -> dict:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"Line {line_number} of {str(path)!r} is not valid JSON ({err}); fix or remove it.") from err
    if not isinstance(row, dict):
        raise DatasetError(
            f"Line {line_number} of {str(path)!r} is a JSON {type(row).__name__}, not an object; each line of a "
            'JSONL file must be one row such as {"messages": [...]}.'
        )
    return row


def stream_hub_sample(reference: str, *, split: str, config: str | None, sample_size: int) -> DatasetSample:
    """Stream the first `sample_size` rows of a Hub dataset, with the row count from the Hub's metadata if present.

    The dataset is never downloaded whole: only its metadata and the parts of data files that contain the first
    rows are read. A local folder in Hub layout (data files, optionally a README
    with `configs`) is read the same way.

    Raises:
        DatasetError: If the dataset is private, gated, missing or unreachable, or the split or config is unknown.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        stream = datasets.load_dataset(reference, config, split=split, streaming=True)
        rows = [dict(row) for row in stream.take(sample_size)]
    except (GatedRepoError, RepositoryNotFoundError, DatasetNotFoundError) as err:
        raise DatasetError(
            f"Dataset {reference!r} is private, gated or does not exist on the Hub. If it exists, log in with "
            "`hf auth login` (or set `HF_TOKEN`) and accept its conditions on its Hub page: "
            f"https://huggingface.co/datasets/{reference}"
        ) from err
    except ConnectionError as err:
        raise DatasetError(
            f"The Hugging Face Hub is unreachable, so dataset {reference!r} cannot be streamed; pass a local "
            "JSONL, JSON, CSV, Parquet or Arrow file or folder instead."
        ) from err
    except ValueError as err:
        # `datasets` raises ValueError for an unknown split and for a missing config name.
        raise DatasetError(f"Cannot stream split {split!r} (config {config!r}) of {reference!r}: {err}") from err
    num_rows = _hub_split_count(stream, split)
    logger.debug("Streamed %d rows of %s (split %s)", len(rows), reference, split)
    return DatasetSample(rows=rows, num_rows=num_rows, count_source="Hub metadata" if num_rows is not None else "unknown")


def _hub_split_count(stream, split: str) -> int | None:
    splits = getattr(stream.info, "splits", None) or {}
    info = splits.get(split) if hasattr(splits, "get") else None
    return getattr(info, "num_examples", None) or None
