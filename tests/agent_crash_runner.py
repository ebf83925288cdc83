"""Run the agent loop on a saved spec and SIGKILL this process at one named point; used by the crash tests.

    python agent_crash_runner.py SPEC.json POINT

POINT is `none`, `evaluation` (inside a benchmark's scoring), `submit` (after the backend started a job and
before the state records it), or `before:EVENT` / `after:EVENT` around the first state save of that journal
event in this process. `EVENT` may name the decider, as in `decision:policy`.
"""

import json
import os
import signal
import sys
from pathlib import Path


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_point(point: str) -> None:
    from autotrain_agent.backends.local import LocalBackend
    from autotrain_agent.store import ExperimentStore
    from autotrain_agent.evaluation import scoring

    if point == "evaluation":
        original_score = scoring.score_humaneval

        def score_then_die(*args, **kwargs):
            kill_self()
            return original_score(*args, **kwargs)

        # The evaluate tool imports `score_humaneval` from the module at each call, so patching the module works.
        scoring.score_humaneval = score_then_die
    elif point == "submit":
        original_submit = LocalBackend.submit_job

        def submit_then_die(self, **kwargs):
            original_submit(self, **kwargs)
            kill_self()

        LocalBackend.submit_job = submit_then_die
    elif point != "none":
        when, event = point.split(":", 1)
        original_save = ExperimentStore.save

        def save_around_kill(self, experiment, *, event: str, details=None):
            name = f"{event}:{details.get('by')}" if event == "decision" and details else event
            matches = point_event in (event, name)
            if matches and when == "before":
                kill_self()
            original_save(self, experiment, event=event, details=details)
            if matches and when == "after":
                kill_self()

        point_event = event
        ExperimentStore.save = save_around_kill


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    install_kill_point(sys.argv[2])

    from autotrain_agent.config import Settings
    from autotrain_agent.loop import open_experiment, run_experiment
    from autotrain_agent.state import Plan

    plan = Plan.model_validate(spec["plan"])
    settings = Settings(output_dir=Path(spec["output_dir"]), cache_dir=Path(spec["cache_dir"]), progress=False, poll_interval_s=0.2)
    ctx, _ = open_experiment(plan, settings, echo=lambda line: None)
    with ctx.store.lock(ctx.experiment.id):
        if spec.get("policy_files"):
            ctx.experiment.policy_files = spec["policy_files"]
        result = run_experiment(ctx, max_steps=60)
    print(json.dumps({"state": result.state, "failure": result.failure}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
