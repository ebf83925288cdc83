"""Read a goal as a single experiment, a pipeline of stages, or a comparison of candidates.

"SFT then DPO on my preferences" is a pipeline of two stages; "which small model is best for code solving?" or
two `--model` flags make a comparison. Everything else stays one experiment, planned by `recipes.make_plan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ConfigError
from .recipes import METHOD_KEYWORDS
from .state import Method
from .study import CandidateDimension, StudyKind

# Words that separate the stages of a pipeline goal, in the order the stages run.
_STAGE_SEPARATORS = re.compile(r"\bthen\b|->|→|\bfollowed by\b|\bafter that\b", re.IGNORECASE)
# Phrases that make a goal ask which candidate is best; "best" alone is not one ("keep the best checkpoint").
_COMPARISON_WORDS = re.compile(r"\bwhich\b.*\b(?:best|better)\b|\bcompar(?:e|ing|ison)\b|\bversus\b|\bvs\b", re.IGNORECASE)
_EXPORT_WORDS = re.compile(r"\b(export|gguf|quantize|quantise)\b", re.IGNORECASE)


@dataclass(frozen=True)
class StudyRequest:
    """The reading of a goal and its repeated flags: the study kind and the dimension its members differ in."""

    kind: StudyKind | None
    """`None` for a single experiment."""
    stage_methods: tuple[Method, ...] = ()
    """Training method of each pipeline stage, in order."""
    dimension: CandidateDimension | None = None
    """The dimension that a comparison's candidates differ in."""
    candidates: tuple[str, ...] = ()
    """Candidate values from repeated flags or named by the goal; empty when the embedded candidate list applies."""
    candidates_from_flags: bool = False
    """Whether the candidates came from a repeated flag rather than from the goal's words."""
    export: bool = False
    """The goal ends with an export, which runs after the last stage only."""
    reasons: list[str] = field(default_factory=list)
    """Reasons for the reading, for the plan and the report."""


def named_methods(text: str) -> list[Method]:
    """Return the methods whose keywords occur in `text`, in the order they first occur."""
    padded = f" {text.lower()} "
    found: dict[Method, int] = {}
    for method, keywords in METHOD_KEYWORDS.items():
        positions = [padded.find(keyword) for keyword in keywords if keyword in padded]
        if positions:
            found[method] = min(positions)
    return sorted(found, key=found.__getitem__)


def read_study_goal(goal: str, *, models: list[str], datasets: list[str], methods: list[str]) -> StudyRequest:
    """Return how `goal` and the repeated `--model`, `--dataset` and `--method` values are to be run.

    A goal whose parts, split at "then", "->" or "followed by", name at least two training methods is a
    pipeline, and its datasets feed the stages in order. Any repeated flag outside a pipeline makes a comparison
    over that flag. A goal that asks "which ... best" or says "compare" or "vs" is a comparison too: of the
    methods it names when it names two or more, else of the embedded candidate models.

    Raises:
        ConfigError: If more than one flag is repeated, a pipeline gets several models or a `--method`, or a
            pipeline gets more datasets than it has stages.
    """
    parts = [part for part in _STAGE_SEPARATORS.split(goal) if part.strip()]
    # Each part is one stage, trained with the last method it names: "fine-tune with DPO" is DPO, not SFT.
    stage_methods = [named_methods(part)[-1] for part in parts if named_methods(part)]
    export = len(parts) > 1 and bool(_EXPORT_WORDS.search(parts[-1]))

    if len(parts) > 1 and len(stage_methods) > 1:
        return _pipeline_request(stage_methods, models=models, datasets=datasets, methods=methods, export=export)

    repeated = {name: values for name, values in (("model", models), ("dataset", datasets), ("method", methods)) if len(values) > 1}
    if len(repeated) > 1:
        flags = " and ".join(f"`--{name}`" for name in repeated)
        raise ConfigError(f"A comparison varies one thing, but {flags} were each given several times; repeat only one of them.")
    if repeated:
        (name, values), = repeated.items()
        reason = f"comparison of {len(values)} {name}s: `--{name}` was given {len(values)} times"
        return StudyRequest(kind="comparison", dimension=name, candidates=tuple(values), candidates_from_flags=True,  # type: ignore[arg-type]
                            export=export, reasons=[reason])
    match = _COMPARISON_WORDS.search(goal)
    if match and len(stage_methods := named_methods(goal)) > 1:
        reason = f"comparison of methods {', '.join(m.upper() for m in stage_methods)}: the goal says {match.group(0)!r} and names them"
        return StudyRequest(kind="comparison", dimension="method", candidates=tuple(stage_methods), export=export, reasons=[reason])
    if match:
        reason = f"comparison of models: the goal says {match.group(0)!r} and no flag names the candidates, so the embedded list is used"
        return StudyRequest(kind="comparison", dimension="model", export=export, reasons=[reason])
    return StudyRequest(kind=None, export=export)


def _pipeline_request(stage_methods: list[Method], *, models: list[str], datasets: list[str], methods: list[str], export: bool) -> StudyRequest:
    chain = " -> ".join(method.upper() for method in stage_methods)
    if methods:
        raise ConfigError(f"The goal already names the stages ({chain}); leave out `--method`.")
    if len(models) > 1:
        raise ConfigError(f"A pipeline ({chain}) trains one model stage after stage, but `--model` was given {len(models)} times; pass one.")
    if len(datasets) > len(stage_methods):
        raise ConfigError(
            f"A pipeline of {len(stage_methods)} stages ({chain}) takes at most one `--dataset` per stage, in stage order; "
            f"got {len(datasets)}."
        )
    reasons = [f"pipeline {chain}: the goal names {len(stage_methods)} methods in order; each stage starts from the previous stage's best checkpoint"]
    if export:
        reasons.append("export after the last stage only: the goal ends with an export")
    return StudyRequest(kind="pipeline", stage_methods=tuple(stage_methods), export=export, reasons=reasons)
