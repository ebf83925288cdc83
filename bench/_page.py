"""Append a benchmark record to a Markdown page such as BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

TITLE = "# Benchmarks\n"


def append_record(path: Path, record: str) -> None:
    """Append `record` to the page at `path`, creating the page with its title when it does not exist."""
    if not path.exists():
        path.write_text(TITLE, encoding="utf-8")
    with open(path, "a", encoding="utf-8") as page:
        page.write("\n" + record.rstrip("\n") + "\n")


def publish_record(record: str, output: Path | None) -> None:
    """Print `record`, and append it to the page at `output` unless `output` is `None`."""
    print(record)
    if output is not None:
        append_record(output, record)
