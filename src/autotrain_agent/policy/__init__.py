"""Policy rules applied to live training metrics: signals, the rule language, verdicts and their changes.

Rules are data (`policies/default.yaml` plus the user's files), validated when loaded and never executed as code.
"""

from .changes import (
    Extension,
    check_resume_has_steps,
    extension_config,
    plan_extension,
    resubmission_config,
)
from .rules import Action, Policy, PolicyError, Rule, Verdict, load_policy, parse_policy
from .signals import SIGNALS, Observation, classify_failure_phase

__all__ = [
    "SIGNALS",
    "Action",
    "Extension",
    "Observation",
    "Policy",
    "PolicyError",
    "Rule",
    "Verdict",
    "check_resume_has_steps",
    "classify_failure_phase",
    "extension_config",
    "load_policy",
    "parse_policy",
    "plan_extension",
    "resubmission_config",
]
