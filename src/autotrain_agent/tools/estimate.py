"""The `estimate_experiment` tool: expected wall time and cost of the plan before anything runs."""

from __future__ import annotations

from ..context import ExperimentContext
from ..estimate import estimate_minutes


def estimate_experiment(ctx: ExperimentContext) -> str:
    """Return the plan's estimated wall time and cost; changes nothing.

    Limitations:
        Only the local CPU backend is estimated, at zero cost; the time is a model of measured throughput, not a
        measurement of this machine.
    """
    plan = ctx.experiment.plan
    minutes = estimate_minutes(plan)
    hp = plan.hyperparameters
    time_text = f"about {minutes:.0f} min" if minutes is not None else "unknown (the model size is not known)"
    return (
        f"Experiment {ctx.experiment.id}: {plan.method.upper()} of {plan.base_model} for {hp.max_steps} steps on the "
        f"{plan.backend} backend ({plan.hardware}). Expected wall time {time_text}, training and both evaluations "
        f"included. Cost: 0 USD (local backend)."
    )
