"""The `run` command's path for pipeline and comparison goals, and `resume` of a saved study.

Not a subcommand of its own: `run` hands a goal here when `study_goals.read_study_goal` reads it as a study.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..approval import BudgetApprover, ConsoleApprover
from ..config import Settings
from ..study import Study
from ..study_goals import StudyRequest
from . import EXIT_FAILED, EXIT_OK


def run_study_command(args: argparse.Namespace, request: StudyRequest) -> int:
    """Plan the study and print its plan, then run it (or resume the saved one) unless `--plan-only` is given.

    Raises:
        NotImplementedError: If `--llm` is given: studies are driven by the rule-based planner only.
        ConfigError, ModelNotFoundError, DatasetError: If a member cannot be planned or its inputs are missing.
        ApprovalRejectedError: Never; a rejected study is saved as `needs_approval` and the exit status is 1.
    """
    from ..hub import is_hub_reachable
    from ..study_loop import open_study
    from ..study_plan import estimate_study, plan_study
    from .run import overrides_from_args

    if args.llm:
        # TODO: let an LLM planner drive each member experiment of a study.
        raise NotImplementedError("Pipelines and comparisons run with the rule-based planner only; leave out `--llm`.")
    hub_reachable = is_hub_reachable()
    shared = argparse.Namespace(**vars(args))
    shared.model = _shared_value(args.model, varied=request.dimension == "model")
    shared.dataset = _shared_value(args.dataset, varied=request.kind == "pipeline" or request.dimension == "dataset")
    shared.method = _shared_value(args.method, varied=request.dimension == "method")
    request = dataclasses.replace(request, export=request.export or args.export)
    study = plan_study(args.goal, request, overrides_from_args(shared), datasets=args.dataset or [], hub_reachable=hub_reachable)
    study.budget_usd, study.approve_under_usd, study.require_approval = args.budget, args.approve_under, args.require_approval

    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    api = None
    if hub_reachable and study.members[0].plan.backend == "hf-jobs":
        from huggingface_hub import HfApi

        api = HfApi()
    estimate_study(study, cache_dir=settings.cache_dir, params_override=args.params, api=api)
    if args.plan_only:
        print(study.model_dump_json(indent=2) if args.json else format_study_plan(study))
        return EXIT_OK

    study, resumed = open_study(study, settings)
    print(format_study_plan(study))
    if resumed:
        print(f"Resuming study {study.id} (status {study.status.value}).")
    return drive_study(study, settings, args)


def _shared_value(values: list[str] | None, *, varied: bool) -> str | None:
    """Return the one value every member shares, or `None` when the members vary it."""
    if varied or not values:
        return None
    return values[0]


def drive_study(study: Study, settings: Settings, args: argparse.Namespace) -> int:
    """Run the study to its end with the configured approver, print its summary, and return the exit status."""
    from ..policy import load_policy
    from ..study_loop import member_experiments, run_study
    from ..study_report import state_winner

    policy_files = [str(path.resolve()) for path in args.policy]
    load_policy([Path(path) for path in policy_files])
    settings.notify_command, settings.notify_url = args.notify, args.notify_url
    approver = BudgetApprover(study.approve_under_usd) if study.approve_under_usd is not None else ConsoleApprover()
    result = run_study(study, settings, approver=approver, max_steps=args.max_agent_steps, policy_files=policy_files)

    print()
    print(f"Study {study.id}: {study.status.value}." + (f" {study.failure}" if study.failure else ""))
    for experiment_id, state in result.member_states.items():
        print(f"  {experiment_id}: {state}")
    if study.kind == "comparison":
        print(state_winner(study, member_experiments(study, settings)))
    print(f"Report: {result.report_path}")
    return EXIT_OK if result.state == "succeeded" else EXIT_FAILED


def format_study_plan(study: Study) -> str:
    """Return the study's plan for a person: each member's plan, then the total estimate and the budget."""
    from .run import format_plan

    kind = f"comparison of {study.dimension}s" if study.kind == "comparison" else "pipeline"
    lines = [f"Plan for study {study.id}: {kind}, {len(study.members)} experiments", "  why:", *(f"    - {reason}" for reason in study.reasons)]
    for index, member in enumerate(study.members, start=1):
        plan = member.plan
        # Until the previous stage hands its model over, the plan names the pipeline's first model.
        if member.base_from and Path(plan.base_model).name != member.base_from:
            plan = plan.model_copy(update={"base_model": f"best checkpoint of {member.base_from}, merged (base: {plan.base_model})"})
        lines += ["", f"Experiment {index} of {len(study.members)}, {member.label}:", format_plan(member.experiment_id, plan)]
        if member.estimated_cost_usd:
            lines.append(f"  expected cost:   ${member.estimated_cost_usd:.2f} (estimate)")
    minutes = study.estimated_minutes
    total = f"about {minutes:.0f} min" if minutes is not None else "unknown time"
    budget = f"; budget ${study.budget_usd:.2f}" if study.budget_usd is not None else ""
    lines += ["", f"Total: {total} and ${study.estimated_cost_usd:.2f} for {len(study.members)} experiments (estimate){budget}"]
    return "\n".join(lines)


def resume_study_command(study_id: str, args: argparse.Namespace) -> int:
    """Reload a saved study and run it to its end; finished members are skipped."""
    from ..study_loop import load_study

    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    study = load_study(study_id, settings)
    print(f"Resuming study {study.id} (status {study.status.value}).")
    return drive_study(study, settings, args)

