"""Policy rules as data: loading and validating rule files, and evaluating rules into verdicts.

A rule file is YAML:

```yaml
rules:
  - name: extend-while-loss-falls
    phase: end                  # running, end or any (default any)
    when:                       # a list means all of; also {all: [...]} or {any: [...]}, nestable
      - {signal: job_state, equals: succeeded}
      - {signal: slope, metric: loss, window_steps: 10, below: 0}
    action: {type: extend, steps_fraction: 0.5}
    max_times: 2                # fire at most this often per experiment (default unlimited)
```

A comparison names one signal (see `SIGNALS`), the signal's parameters, and exactly one comparator: `above`,
`below`, `at_least`, `at_most`, `equals`, `not_equals` or `in`. A signal that has no value yet (too few points,
no budget set) makes its comparison false. Nothing in a rule file is executed as code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .._resources import resource_dir
from ..errors import PolicyError
from .signals import SIGNALS, Observation

logger = logging.getLogger(__name__)

ActionType = Literal["continue", "stop", "extend", "resubmit", "evaluate_checkpoint", "pick_best_checkpoint", "export"]
RulePhase = Literal["running", "end", "any"]
COMPARATORS = ("above", "below", "at_least", "at_most", "equals", "not_equals", "in")
ACTION_PARAMETERS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "continue": {},
    "stop": {"evaluate": bool},
    "extend": {"steps": int, "steps_fraction": (int, float)},
    "resubmit": {
        "learning_rate_factor": (int, float),
        "halve_batch": bool,
        "gradient_checkpointing": bool,
        "halve_eval_batch": bool,
    },
    "evaluate_checkpoint": {"step": int},
    "pick_best_checkpoint": {"metric": str},
    "export": {},
}
"""Each action's optional parameters and their types."""
RESULT_ACTIONS = frozenset({"evaluate_checkpoint", "pick_best_checkpoint", "export"})
"""Actions on the checkpoints of a finished run; a rule may use them only in the `end` phase."""
# Checkpoints are ranked by the plan's benchmark score, HumanEval pass@1, with the evaluation loss breaking ties.
PICK_METRICS = ("pass@1",)


@dataclass(frozen=True)
class Comparison:
    """One signal compared with a value."""

    signal: str
    parameters: dict[str, Any]
    comparator: str
    value: Any

    def evaluate(self, observation: Observation) -> tuple[bool, Any]:
        """Return whether the comparison holds and the signal value it saw."""
        seen = SIGNALS[self.signal].compute(observation, **self.parameters)
        if seen is None:
            return False, None
        if self.comparator == "equals":
            return seen == self.value, seen
        if self.comparator == "not_equals":
            return seen != self.value, seen
        if self.comparator == "in":
            return seen in self.value, seen
        holds = {
            "above": seen > self.value,
            "below": seen < self.value,
            "at_least": seen >= self.value,
            "at_most": seen <= self.value,
        }[self.comparator]
        return holds, seen

    @property
    def label(self) -> str:
        """The comparison written out, e.g. `slope(metric=loss, window_steps=10) below 0`."""
        arguments = ", ".join(f"{key}={value}" for key, value in self.parameters.items())
        return f"{self.signal}({arguments}) {self.comparator} {self.value}"


@dataclass(frozen=True)
class Condition:
    """All or any of a list of comparisons and nested conditions."""

    mode: Literal["all", "any"]
    parts: tuple[Comparison | Condition, ...]

    def evaluate(self, observation: Observation, evidence: dict[str, Any]) -> bool:
        """Return whether the condition holds, adding every signal value seen to `evidence`."""
        results = []
        for part in self.parts:
            if isinstance(part, Comparison):
                holds, seen = part.evaluate(observation)
                evidence[part.label] = seen
            else:
                holds = part.evaluate(observation, evidence)
            results.append(holds)
        return all(results) if self.mode == "all" else any(results)


@dataclass(frozen=True)
class Action:
    """What a rule does when its condition holds."""

    type: ActionType
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """A named condition over signals with the action it triggers."""

    name: str
    when: Condition
    action: Action
    phase: RulePhase = "any"
    max_times: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule on one observation: the action, the step it saw and the numbers behind it."""

    rule: str
    action: Action
    step: int
    phase: str
    evidence: dict[str, Any]
    description: str = ""



@dataclass(frozen=True)
class Policy:
    """An ordered list of rules; the first rule whose condition holds decides."""

    rules: tuple[Rule, ...]

    def evaluate(self, observation: Observation, *, times_fired: dict[str, int] | None = None) -> Verdict | None:
        """Return the verdict of the first rule that applies to the observation's phase and holds, or `None`.

        A rule that already fired `max_times` times (counted in `times_fired`, by rule name) is skipped, so that
        a later rule, for example a plain stop after two resubmissions, can decide instead.
        """
        times_fired = times_fired or {}
        for rule in self.rules:
            if rule.phase not in ("any", observation.phase):
                continue
            if rule.max_times is not None and times_fired.get(rule.name, 0) >= rule.max_times:
                continue
            evidence: dict[str, Any] = {}
            if rule.when.evaluate(observation, evidence):
                logger.debug("rule %s holds at step %d: %s", rule.name, observation.step, evidence)
                return Verdict(rule.name, rule.action, observation.step, observation.phase, evidence, rule.description)
        return None


def load_policy(paths: list[Path] | tuple[Path, ...] = ()) -> Policy:
    """Load the shipped `default.yaml`, then each file in `paths` in order.

    A rule in a later file replaces the earlier rule of the same name in place; a new name is appended; a rule
    with `enabled: false` removes the earlier rule of that name.

    Raises:
        PolicyError: If a file is unreadable or a rule is invalid. The message names the file, the rule and the
            field.
    """
    rules: dict[str, Rule] = {}
    for path in [resource_dir("policies") / "default.yaml", *paths]:
        for name, rule in _read_rule_file(Path(path)):
            if rule is None:
                rules.pop(name, None)
            else:
                rules[name] = rule
    return Policy(tuple(rules.values()))


def parse_policy(document: Any, *, source: str = "<policy>") -> Policy:
    """Validate a parsed rule document (the YAML as Python objects) and return its rules in order.

    Raises:
        PolicyError: If a rule is invalid.
    """
    return Policy(tuple(rule for _, rule in _parse_document(document, source) if rule is not None))


def _read_rule_file(path: Path) -> list[tuple[str, Rule | None]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise PolicyError(f"Cannot read the policy file {str(path)!r}: {err}") from err
    return _parse_document(document, str(path))


def _parse_document(document: Any, source: str) -> list[tuple[str, Rule | None]]:
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise PolicyError(f"{source}: a policy file must be a mapping with a `rules` list, got {type(document).__name__}.")
    unknown = set(document) - {"rules", "version"}
    if unknown:
        raise PolicyError(f"{source}: unknown top-level keys {sorted(unknown)}; only `rules` and `version` are allowed.")
    parsed, seen = [], set()
    for index, raw in enumerate(document["rules"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: rule {name!r}" if isinstance(name, str) and name else f"{source}: rule #{index + 1}"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: a rule must be a mapping, got {raw!r}.")
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{where}: field `name` is missing; give every rule a unique name.")
        if name in seen:
            raise PolicyError(f"{where}: field `name` repeats an earlier rule in the same file; names must be unique.")
        seen.add(name)
        parsed.append((name, _parse_rule(raw, where)))
    return parsed


def _parse_rule(raw: dict, where: str) -> Rule | None:
    unknown = set(raw) - {"name", "when", "action", "phase", "max_times", "description", "enabled"}
    if unknown:
        raise PolicyError(f"{where}: unknown fields {sorted(unknown)}; allowed: name, when, action, phase, max_times, description, enabled.")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"{where}: field `enabled` must be true or false, got {enabled!r}.")
    if not enabled:
        return None
    phase = raw.get("phase", "any")
    if phase not in ("running", "end", "any"):
        raise PolicyError(f"{where}: field `phase` must be running, end or any, got {phase!r}.")
    max_times = raw.get("max_times")
    if max_times is not None and (not isinstance(max_times, int) or isinstance(max_times, bool) or max_times < 1):
        raise PolicyError(f"{where}: field `max_times` must be a positive integer, got {max_times!r}.")
    if "when" not in raw:
        raise PolicyError(f"{where}: field `when` is missing; give a list of comparisons.")
    if "action" not in raw:
        raise PolicyError(f"{where}: field `action` is missing; use one of {list(ACTION_PARAMETERS)}.")
    action = _parse_action(raw["action"], where)
    if action.type in RESULT_ACTIONS and phase != "end":
        raise PolicyError(
            f"{where}: action `{action.type}` acts on the checkpoints of a finished run, so field `phase` must be "
            f"`end`, got {phase!r}."
        )
    return Rule(
        name=raw["name"],
        when=_parse_condition(raw["when"], where, "when"),
        action=action,
        phase=phase,
        max_times=max_times,
        description=str(raw.get("description", "")),
    )


def _parse_condition(raw: Any, where: str, field_path: str) -> Condition:
    if isinstance(raw, list):
        mode, items = "all", raw
    elif isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any"):
        mode, items = next(iter(raw.items()))
    else:
        raise PolicyError(f"{where}: field `{field_path}` must be a list of comparisons or {{all: [...]}} / {{any: [...]}}, got {raw!r}.")
    if not isinstance(items, list) or not items:
        raise PolicyError(f"{where}: field `{field_path}` must hold at least one comparison.")
    parts = []
    for index, item in enumerate(items):
        path = f"{field_path}[{index}]"
        if isinstance(item, dict) and "signal" not in item:
            parts.append(_parse_condition(item, where, path))
        else:
            parts.append(_parse_comparison(item, where, path))
    return Condition(mode, tuple(parts))


def _parse_comparison(raw: Any, where: str, field_path: str) -> Comparison:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: field `{field_path}` must be a mapping with `signal`, got {raw!r}.")
    signal = raw["signal"]
    if signal not in SIGNALS:
        raise PolicyError(f"{where}: field `{field_path}.signal` is {signal!r}, not a known signal; use one of {sorted(SIGNALS)}.")
    spec = SIGNALS[signal]
    comparators = [key for key in raw if key in COMPARATORS]
    if len(comparators) != 1:
        raise PolicyError(f"{where}: field `{field_path}` needs exactly one comparator of {list(COMPARATORS)}, got {comparators or 'none'}.")
    comparator = comparators[0]
    parameters = {}
    for key, value in raw.items():
        if key in ("signal", comparator):
            continue
        expected = spec.parameters.get(key) or (type(spec.optional[key]) if key in spec.optional else None)
        if expected is None:
            raise PolicyError(f"{where}: field `{field_path}.{key}` is not a parameter of signal {signal!r}; it takes {sorted([*spec.parameters, *spec.optional]) or 'none'}.")
        if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            raise PolicyError(f"{where}: field `{field_path}.{key}` must be a {expected.__name__}, got {value!r}.")
        parameters[key] = value
    missing = set(spec.parameters) - set(parameters)
    if missing:
        raise PolicyError(f"{where}: field `{field_path}` is missing {sorted(missing)} for signal {signal!r}.")
    if spec.optional.get("mode") and parameters.get("mode", "min") not in ("min", "max"):
        raise PolicyError(f"{where}: field `{field_path}.mode` must be min or max, got {parameters['mode']!r}.")
    value = raw[comparator]
    _check_comparison_value(value, comparator, spec.kind, where, f"{field_path}.{comparator}")
    return Comparison(signal, parameters, comparator, value)


def _check_comparison_value(value: Any, comparator: str, kind: str, where: str, field_path: str) -> None:
    if comparator == "in":
        if not isinstance(value, list) or not value:
            raise PolicyError(f"{where}: field `{field_path}` must be a non-empty list, got {value!r}.")
        return
    if comparator in ("above", "below", "at_least", "at_most"):
        if kind != "number" or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise PolicyError(f"{where}: field `{field_path}` compares a {kind} signal by order, or with {value!r}; use a number signal and a number.")
        return
    if kind == "flag" and not isinstance(value, bool):
        raise PolicyError(f"{where}: field `{field_path}` must be true or false for a yes/no signal, got {value!r}.")


def _parse_action(raw: Any, where: str) -> Action:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict) or raw.get("type") not in ACTION_PARAMETERS:
        kind = raw.get("type") if isinstance(raw, dict) else raw
        raise PolicyError(f"{where}: field `action.type` is {kind!r}; use one of {list(ACTION_PARAMETERS)}.")
    allowed = ACTION_PARAMETERS[raw["type"]]
    parameters = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key not in allowed:
            raise PolicyError(f"{where}: field `action.{key}` is not a parameter of action {raw['type']!r}; it takes {sorted(allowed) or 'none'}.")
        if not isinstance(value, allowed[key]) or (isinstance(value, bool) and allowed[key] is not bool):
            raise PolicyError(f"{where}: field `action.{key}` has the wrong type: {value!r}.")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise PolicyError(f"{where}: field `action.{key}` must be positive, got {value!r}.")
        parameters[key] = value
    if raw["type"] == "extend" and not parameters:
        raise PolicyError(f"{where}: action `extend` needs `steps` or `steps_fraction`.")
    if raw["type"] == "evaluate_checkpoint" and "step" not in parameters:
        raise PolicyError(f"{where}: action `evaluate_checkpoint` needs `step`, the global step of the checkpoint to score.")
    if raw["type"] == "pick_best_checkpoint" and parameters.get("metric", PICK_METRICS[0]) not in PICK_METRICS:
        raise PolicyError(f"{where}: field `action.metric` is {parameters['metric']!r}; checkpoints are ranked by {list(PICK_METRICS)}.")
    if raw["type"] == "resubmit" and not parameters:
        raise PolicyError(f"{where}: action `resubmit` needs at least one change, e.g. `learning_rate_factor: 0.1`.")
    return Action(raw["type"], parameters)
