"""`autotrain-agent status [EXPERIMENT]`: list saved experiments or show one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import EXIT_OK

NAME = "status"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `status` subcommand."""
    status = subparsers.add_parser(NAME, parents=parents, help="show saved experiments and studies", description="Show saved experiments and studies.")
    status.add_argument("experiment", nargs="?", help="experiment or study id (default: list all)")
    status.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that holds training_runs/ (default: current folder)")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(handler=status_command)


def status_command(args: argparse.Namespace) -> int:
    """Print one experiment's or study's plan, stages, runs and scores, or a line per saved experiment and study."""
    from ..store import ExperimentStore
    from ..study import StudyStore
    from .run import format_plan

    store = ExperimentStore(args.output_dir.resolve() / "training_runs")
    studies = StudyStore(store.root)
    if args.experiment is None:
        experiments = [store.load(experiment_id) for experiment_id in store.list_ids()]
        saved_studies = [studies.load(study_id) for study_id in studies.list_ids()]
        if args.json:
            listing = [{"id": e.id, "status": e.status.value, "goal": e.goal} for e in experiments]
            listing += [{"id": s.id, "status": s.status.value, "goal": s.goal, "study": s.kind, "members": [m.experiment_id for m in s.members]}
                        for s in saved_studies]
            print(json.dumps(listing, indent=2))
            return EXIT_OK
        if not experiments and not saved_studies:
            print(f"No experiments under {store.root}.")
        for experiment in experiments:
            done = f"{len(experiment.completed_stages)}/{len(experiment.plan.stages)}"
            print(f"{experiment.id}  {experiment.status.value}  stages done: {done}  {experiment.goal!r}")
        for study in saved_studies:
            finished = sum(store.exists(m.experiment_id) and store.load(m.experiment_id).status.value == "succeeded" for m in study.members)
            print(f"{study.id}  {study.status.value}  {study.kind}: {finished}/{len(study.members)} experiments succeeded  {study.goal!r}")
        return EXIT_OK
    if studies.exists(args.experiment):
        return _print_study(studies.load(args.experiment), store, as_json=args.json)

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


def _print_study(study, store, *, as_json: bool) -> int:
    """Print a study's plan and the status of each member experiment."""
    from .run_study import format_study_plan

    if as_json:
        print(study.model_dump_json(indent=2))
        return EXIT_OK
    print(format_study_plan(study))
    print(f"status: {study.status.value}" + (f" ({study.failure})" if study.failure else ""))
    for member in study.members:
        state = store.load(member.experiment_id).status.value if store.exists(member.experiment_id) else "not started"
        print(f"  {member.experiment_id}: {state}")
    return EXIT_OK
