"""Let an LLM propose the plan's open choices from the catalog's candidates, with a reason for each.

The LLM only chooses among candidates the rules already accept; anything else (prose, an unknown value, a choice
the user fixed with a flag) is ignored with a recorded reason, and the rule-based choice is kept.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from smolagents.models import Model

from .prompts import render_prompt
from .recipes import BUILTIN_CODE_DATASET, DEFAULT_MODEL, HUB_CODE_DATASET, SUPPORTED_METHODS, PlanOverrides, make_plan
from .state import Plan

logger = logging.getLogger(__name__)


def plan_candidates(overrides: PlanOverrides, *, hub_reachable: bool) -> dict[str, dict[str, str]]:
    """Return the open choices, each with its candidate values and what is known about them.

    Choices the user fixed in `overrides` are left out.
    """
    candidates: dict[str, dict[str, str]] = {}
    if overrides.model is None:
        candidates["model"] = {DEFAULT_MODEL: "135M instruct model, Apache-2.0, trains on a CPU in minutes"}
    if overrides.dataset is None:
        datasets = {BUILTIN_CODE_DATASET: "about 400 Python functions with passing doctests, offline, MIT"}
        if hub_reachable:
            datasets[HUB_CODE_DATASET] = "competitive-programming solutions with reasoning, from the Hub"
        candidates["dataset"] = datasets
    if overrides.method is None:
        candidates["method"] = _method_candidates(overrides, hub_reachable=hub_reachable)
    if overrides.benchmark is None:
        candidates["benchmark"] = {"humaneval": "164 Python problems, pass@1 with sandboxed tests"}
    return candidates


def _method_candidates(overrides: PlanOverrides, *, hub_reachable: bool) -> dict[str, str]:
    """Return the methods the plan can use with its data, so that no proposal fails at planning."""
    methods = {"sft": "supervised fine-tuning on the reference answers"}
    if overrides.dataset is not None:
        methods["dpo"] = "preference optimisation; needs prompt, chosen and rejected columns"
    if overrides.reward_functions or (overrides.dataset is None and not hub_reachable):
        methods["grpo"] = "reinforcement learning from rewards; the builtin code set is scored by running its tests"
    return {method: reason for method, reason in methods.items() if method in SUPPORTED_METHODS}


def propose_plan(goal: str, model: Model, *, overrides: PlanOverrides | None = None, hub_reachable: bool = False) -> Plan:
    """Return the plan for `goal` with the open choices proposed by `model` and its reasons in `plan.reasons`.

    Never raises for a bad reply: an unusable proposal falls back to the rules, and the plan's reasons record why.

    Raises:
        ConfigError: If the goal cannot be planned even by the rules (see `make_plan`).
    """
    overrides = overrides or PlanOverrides()
    candidates = plan_candidates(overrides, hub_reachable=hub_reachable)
    prompt = render_prompt("propose_plan", goal=goal, candidates=json.dumps(candidates, indent=2))
    try:
        reply = model.generate([{"role": "user", "content": [{"type": "text", "text": prompt}]}])
        choices, notes = _accepted_choices(reply.content or "", candidates)
    except Exception as err:  # noqa: BLE001 - any model failure falls back to the rules, with the reason recorded
        logger.warning("The LLM's plan proposal failed; the rules choose instead: %s", err)
        choices, notes = {}, [f"the LLM's plan proposal failed ({type(err).__name__}); the rules chose"]
    plan = make_plan(goal, dataclasses.replace(overrides, **{field: value for field, (value, _) in choices.items()}), hub_reachable=hub_reachable)
    plan.reasons.extend(f"LLM chose {field} {value}: {reason}" for field, (value, reason) in choices.items())
    plan.reasons.extend(notes)
    return plan


def _accepted_choices(text: str, candidates: dict[str, dict[str, str]]) -> tuple[dict[str, tuple[str, str]], list[str]]:
    proposal = _first_json_object(text)
    if proposal is None:
        return {}, ["the LLM's plan proposal held no JSON object; the rules chose"]
    choices, notes = {}, []
    for field, entry in proposal.items():
        value, reason = (entry.get("value"), entry.get("reason", "")) if isinstance(entry, dict) else (entry, "")
        if field in candidates and value in candidates[field]:
            choices[field] = (value, str(reason).strip() or "no reason given")
        else:
            notes.append(f"the LLM proposed {field}={value!r}, which is not an open choice's candidate; ignored")
    return choices, notes


def _first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char != "{":
            continue
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None
