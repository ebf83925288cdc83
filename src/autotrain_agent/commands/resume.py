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
        help="continue a saved experiment",
        description=(
            "Continue a saved experiment: reload its state, re-attach to jobs still running, pick up finished ones "
            "and act on stored policy verdicts. A run is never submitted twice."
        ),
    )
    resume.add_argument("experiment", help="experiment id, as listed by `autotrain-agent status`")
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
    from .run import drive_experiment

    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    ctx = open_saved_experiment(args.experiment, settings)
    done = ", ".join(stage.value for stage in ctx.experiment.completed_stages) or "none"
    print(f"Resuming experiment {ctx.experiment.id} (status {ctx.experiment.status.value}; stages done: {done}).")
    return drive_experiment(ctx, args)


def open_saved_experiment(experiment_id: str, settings, *, backend=None, echo=print):
    """Return the context of the saved experiment `experiment_id`, with the local backend of its folder.

    Raises:
        StateError: If no experiment has that id under `settings.runs_dir`.
    """
    from ..backends.local import LocalBackend
    from ..context import ExperimentContext
    from ..errors import StateError
    from ..store import ExperimentStore

    store = ExperimentStore(settings.runs_dir)
    if not store.exists(experiment_id):
        known = ", ".join(store.list_ids()) or "none"
        raise StateError(f"No saved experiment {experiment_id!r} under {store.root}; known experiments: {known}.")
    experiment = store.load(experiment_id)
    backend = backend or LocalBackend(store.folder(experiment_id) / "jobs")
    return ExperimentContext(experiment=experiment, store=store, settings=settings, backend=backend, echo=echo)
