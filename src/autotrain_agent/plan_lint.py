"""Lint a run's training settings for combinations known to break training, before anything is launched.

Each rule matches a combination of the model family and the run's settings and names the settings to change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

logger = logging.getLogger(__name__)

GEMMA_MODEL_TYPES = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})
# transformers 5 uses SDPA when a model config names no attention implementation.
DEFAULT_ATTENTION = "sdpa"


@dataclass(frozen=True)
class LintFinding:
    """One combination of settings that is known to break training, with the settings that avoid it."""

    rule: str
    """Short name of the lint rule."""
    message: str
    """Explanation for a person: the failure and the settings to change."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Setting name to the value that avoids the problem, e.g. `{"fp16": False, "bf16": True}`."""


def lint_training_config(config: Mapping[str, Any]) -> list[LintFinding]:
    """Return the findings for a run's settings; an empty list means no known problem.

    Args:
        config: The run's settings. Keys read: `model_type` (from the model's config.json), `fp16`, `bf16`,
            `attn_implementation` (default "sdpa"), `per_device_train_batch_size` and `packing`. Batches are
            taken as padded when more than one sequence goes into a batch without packing.
    """
    findings = []
    if _is_gemma_fp16_sdpa(config):
        attention = config.get("attn_implementation") or DEFAULT_ATTENTION
        findings.append(
            LintFinding(
                rule="gemma-fp16-sdpa",
                message=(
                    f"Model type {config['model_type']!r} in fp16 with padded batches and "
                    f"`attn_implementation={attention!r}` is known to turn the loss NaN: Gemma's activations "
                    f"overflow fp16 and SDPA's masked padding rows add more. Set `fp16` to false and `bf16` to "
                    f"true (or train in fp32), and set `attn_implementation` to 'eager'."
                ),
                changes={"fp16": False, "bf16": True, "attn_implementation": "eager"},
            )
        )
    return findings


def _is_gemma_fp16_sdpa(config: Mapping[str, Any]) -> bool:
    padded = int(config.get("per_device_train_batch_size") or 1) > 1 and not config.get("packing", False)
    attention = config.get("attn_implementation") or DEFAULT_ATTENTION
    return (
        str(config.get("model_type", "")).lower() in GEMMA_MODEL_TYPES
        and bool(config.get("fp16"))
        and padded
        and attention == "sdpa"
    )


def check_training_config(config: Mapping[str, Any]) -> None:
    """Raise if the linter finds a known problem in the run's settings.

    Raises:
        ConfigError: With every finding's message, so the plan can be fixed before launch.
    """
    findings = lint_training_config(config)
    for finding in findings:
        logger.debug("lint rule %s matched: %s", finding.rule, finding.changes)
    if findings:
        raise ConfigError(" ".join(finding.message for finding in findings))


def read_model_type(model_path: str | Path) -> str | None:
    """Return `model_type` from a local model folder's config.json, or `None` when there is no readable one."""
    config_file = Path(model_path).expanduser() / "config.json"
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
