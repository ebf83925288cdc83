"""Resolve a model's parameter count: `--params`, Hub metadata, a local folder's weights, or its name."""

from __future__ import annotations

import json
import logging
import math
import re
import struct
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .recipes import parse_parameter_count

logger = logging.getLogger(__name__)


def parse_params_flag(text: str) -> int:
    """Parse a `--params` value such as `7B`, `0.6b`, `135M` or `7000000000`.

    Raises:
        ConfigError: If the value is not a positive count.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bBmMkK]?)\s*", text or "")
    if not match:
        raise ConfigError(f"`--params` must be a count such as 7B, 0.6B or 135M, got {text!r}.")
    scale = {"b": 1e9, "m": 1e6, "k": 1e3, "": 1}[match.group(2).lower()]
    count = int(float(match.group(1)) * scale)
    if count <= 0:
        raise ConfigError(f"`--params` must be positive, got {text!r}.")
    return count


def resolve_parameter_count(
    reference: str, *, params_override: str | None = None, api: Any | None = None
) -> tuple[int, str]:
    """Return the model's parameter count and where it came from.

    The order is: `--params`, a local folder's safetensors headers, the Hub's safetensors metadata (only when
    `api`, an `HfApi`, is given), then the model's name, which logs a warning because a name can mislead.

    Raises:
        ConfigError: If no source gives a size; the message requests `--params`.
    """
    if params_override:
        return parse_params_flag(params_override), "--params"
    folder = Path(reference)
    if folder.is_dir():
        count = count_local_parameters(folder)
        if count:
            return count, f"weights in {folder}"
    elif api is not None:
        count = _count_hub_parameters(api, reference)
        if count:
            return count, "Hub safetensors metadata"
    count = parse_parameter_count(reference)
    if count:
        logger.warning("Parameter count of %s read from its name (%s); pass `--params` if the name misleads.", reference, format_parameter_count(count))
        return count, "model name"
    raise ConfigError(
        f"Cannot tell how many parameters {reference!r} has: no weights or metadata found and no size in its name. "
        f"Pass `--params`, e.g. `--params 7B`."
    )


def count_local_parameters(folder: Path) -> int | None:
    """Return the parameters stored in a folder's `*.safetensors` files, reading only their headers."""
    total = 0
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
        total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return total or None


def _count_hub_parameters(api: Any, reference: str) -> int | None:
    try:
        info = api.model_info(reference, expand=["safetensors"])
    except Exception as err:  # noqa: BLE001 - the Hub is one source of several; the caller falls back
        logger.debug("No Hub metadata for %s: %s", reference, err)
        return None
    safetensors = getattr(info, "safetensors", None)
    return getattr(safetensors, "total", None) or None


def format_parameter_count(count: int) -> str:
    """Return a parameter count as `7B`, `0.6B` or `135M`."""
    return f"{count / 1e9:.3g}B" if count >= 5e8 else f"{count / 1e6:.3g}M"
