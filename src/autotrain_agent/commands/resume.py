"""`autotrain-agent resume EXPERIMENT`: continue a saved experiment where its last process stopped."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "resume"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `resume` subcommand."""
    from .run import add_unattended_arguments

    resume = subparsers.add_parser(
        NAME,
        parents=parents,
        help="continue a saved experiment or study",
        description=(
            "Continue a saved experiment: reload its state, re-attach to jobs still running, pick up finished ones "
            "and act on stored policy verdicts. A run is never submitted twice. A study skips its finished experiments."
        ),
    )
    resume.add_argument("experiment", help="experiment or study id, as listed by `autotrain-agent status`")
    resume.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that holds training_runs/ (default: current folder)")
    resume.add_argument("--max-agent-steps", type=int, default=40, help="stop the agent after this many tool calls (default 40)")
    resume.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_unattended_arguments(resume)
    resume.set_defaults(handler=resume_command)


def resume_command(args: argparse.Namespace) -> int:
    """Reload the experiment's state and drive it to a terminal status with the rule-based planner.

    Raises:
        StateError: If no experiment has that id, or another process holds its lock.
    """
    from ..config import Settings
    from ..loop import load_saved_experiment
    from ..study import StudyStore
    from .run import drive_experiment

    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    if StudyStore(settings.runs_dir).exists(args.experiment):
        from .run_study import resume_study_command

        return resume_study_command(args.experiment, args)
    ctx = load_saved_experiment(args.experiment, settings)
    done = ", ".join(stage.value for stage in ctx.experiment.completed_stages) or "none"
    print(f"Resuming experiment {ctx.experiment.id} (status {ctx.experiment.status.value}; stages done: {done}).")
    return drive_experiment(ctx, args)

