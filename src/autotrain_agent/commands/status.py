"""`autotrain-agent status [EXPERIMENT]`: list saved experiments or show one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import EXIT_OK

NAME = "status"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `status` subcommand."""
    status = subparsers.add_parser(NAME, parents=parents, help="show saved experiments", description="Show saved experiments.")
    status.add_argument("experiment", nargs="?", help="experiment id (default: list all)")
    status.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that holds training_runs/ (default: current folder)")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(handler=status_command)


def status_command(args: argparse.Namespace) -> int:
    """Print one experiment's plan, stages, runs and scores, or a line per saved experiment."""
    from ..store import ExperimentStore
    from .run import format_plan

    store = ExperimentStore(args.output_dir.resolve() / "training_runs")
    if args.experiment is None:
        experiments = [store.load(experiment_id) for experiment_id in store.list_ids()]
        if args.json:
            print(json.dumps([{"id": e.id, "status": e.status.value, "goal": e.goal} for e in experiments], indent=2))
            return EXIT_OK
        if not experiments:
            print(f"No experiments under {store.root}.")
        for experiment in experiments:
            done = f"{len(experiment.completed_stages)}/{len(experiment.plan.stages)}"
            print(f"{experiment.id}  {experiment.status.value}  stages done: {done}  {experiment.goal!r}")
        return EXIT_OK

    experiment = store.load(args.experiment)
    if args.json:
        print(experiment.model_dump_json(indent=2))
        return EXIT_OK
    print(format_plan(experiment.id, experiment.plan))
    print(f"status: {experiment.status.value}; stages done: {', '.join(s.value for s in experiment.completed_stages) or 'none'}")
    if experiment.validation:
        validation = experiment.validation
        kept = validation["num_checked"] - validation["num_rejected"]
        print(f"validation: {validation['verdict']} for {validation['method'].upper()}, {kept} of {validation['num_checked']} rows kept")
    for run in experiment.runs:
        print(f"  {run.run_id}: {run.status}, job {run.job_id}, metrics {run.metrics_summary}")
    for score in experiment.baseline_scores:
        print(f"  base: {score.benchmark} {score.metric} {score.value:.3f} ({score.num_passed}/{score.num_samples})")
    for run in experiment.runs:
        for score in run.checkpoints[-1].scores if run.checkpoints else []:
            print(f"  {run.run_id}: {score.benchmark} {score.metric} {score.value:.3f} ({score.num_passed}/{score.num_samples})")
    return EXIT_OK
