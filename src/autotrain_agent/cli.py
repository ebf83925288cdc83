"""Command line: `autotrain-agent GOAL` runs an experiment; `autotrain-agent status` shows saved ones."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import Settings
from .errors import AutotrainError
from .recipes import DEFAULT_CPU_EVAL_LIMIT, DEFAULT_MODEL, PlanOverrides, make_plan
from .state import Plan

logger = logging.getLogger(__name__)

COMMANDS = ("run", "status")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit status: 0 success, 1 failed experiment, 2 invalid input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "run")
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(args.verbose)
    try:
        return args.handler(args)
    except (AutotrainError, NotImplementedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, (ValueError, LookupError, NotImplementedError)) else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: the state is saved; run the same command again to resume.", file=sys.stderr)
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotrain-agent",
        description="Plan, train, evaluate and report a fine-tuning experiment from a goal in plain words.",
        epilog='Example: autotrain-agent "improve code solving with SFT"',
    )
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser(
        "run", parents=[verbosity], help="run an experiment (the default command)", description="Run or resume an experiment."
    )
    run.add_argument("goal", help='the goal in plain words, e.g. "improve code solving with SFT"')
    run.add_argument("--model", help=f"base model: Hub id or local folder (default {DEFAULT_MODEL})")
    run.add_argument("--dataset", help="training data: Hub id, local JSONL/JSON/CSV/Parquet file or folder")
    run.add_argument("--dataset-config", help="Hub dataset configuration name")
    run.add_argument("--method", help="training method: sft (dpo and grpo are planned)")
    run.add_argument("--benchmark", help="benchmark: humaneval")
    run.add_argument("--max-steps", type=int, help="optimizer steps of the training run (default 60)")
    run.add_argument(
        "--eval-limit",
        type=int,
        help=f"HumanEval problems to score, the first N by task number (default {DEFAULT_CPU_EVAL_LIMIT}; 0 = all 164)",
    )
    run.add_argument("--eval-engine", choices=("llama.cpp", "transformers"), help="generation engine for evaluation (default llama.cpp)")
    run.add_argument("--no-lora", action="store_true", help="full fine-tune instead of LoRA")
    run.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder for training_runs/ and training_reports/ (default: current folder)")
    run.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    run.add_argument("--json", action="store_true", help="with --plan-only: print the plan as JSON")
    run.add_argument("--max-agent-steps", type=int, default=40, help="stop the agent after this many tool calls (default 40)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=_run_command)

    status = commands.add_parser("status", parents=[verbosity], help="show saved experiments", description="Show saved experiments.")
    status.add_argument("experiment", nargs="?", help="experiment id (default: list all)")
    status.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that holds training_runs/ (default: current folder)")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(handler=_status_command)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _run_command(args: argparse.Namespace) -> int:
    from .hub import is_hub_reachable

    overrides = PlanOverrides(
        model=args.model,
        dataset=args.dataset,
        dataset_config=args.dataset_config,
        method=args.method,
        benchmark=args.benchmark,
        max_steps=args.max_steps,
        eval_limit=args.eval_limit,
        eval_engine=args.eval_engine,
        use_lora=not args.no_lora,
    )
    plan = make_plan(args.goal, overrides, hub_reachable=is_hub_reachable())
    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)

    from .loop import open_experiment, run_experiment, summarize

    ctx, resumed = open_experiment(plan, settings)
    if args.plan_only:
        if args.json:
            print(json.dumps({"experiment_id": ctx.experiment.id, "plan": ctx.experiment.plan.model_dump(mode="json")}, indent=2))
        else:
            print(format_plan(ctx.experiment.id, ctx.experiment.plan))
        return EXIT_OK

    print(format_plan(ctx.experiment.id, ctx.experiment.plan))
    if resumed:
        done = ", ".join(stage.value for stage in ctx.experiment.completed_stages) or "none"
        print(f"Resuming experiment {ctx.experiment.id} (stages done: {done}).")
    with ctx.store.lock(ctx.experiment.id):
        result = run_experiment(ctx, max_steps=args.max_agent_steps)
    print()
    print(summarize(ctx))
    return EXIT_OK if result.state == "succeeded" else EXIT_FAILED


def format_plan(experiment_id: str, plan: Plan) -> str:
    """Return the plan as text for a person, with the reasons behind it."""
    hp = plan.hyperparameters
    lora = f"LoRA r={plan.lora.r} alpha={plan.lora.alpha}" if plan.lora else "full fine-tune"
    benchmark = ", ".join(f"{b.name} pass@1 ({'first ' + str(b.limit) if b.limit else 'all 164'} problems)" for b in plan.benchmarks)
    estimate = f"about {plan.estimated_minutes:.0f} min (estimate)" if plan.estimated_minutes else "unknown"
    lines = [
        f"Plan for experiment {experiment_id}",
        f"  model:           {plan.base_model}",
        f"  dataset:         {plan.dataset.reference} (split {plan.dataset.split})",
        f"  method:          {plan.method.upper()} with {lora}",
        f"  hyperparameters: {hp.max_steps} steps, batch {hp.per_device_train_batch_size} x {hp.gradient_accumulation_steps} "
        f"accumulation, lr {hp.learning_rate:g}, max length {hp.max_length} tokens",
        f"  benchmark:       {benchmark}, engine {plan.eval_engine}",
        f"  backend:         {plan.backend} ({plan.hardware}), free",
        f"  expected time:   {estimate}",
        "  why:",
        *(f"    - {reason}" for reason in plan.reasons),
    ]
    return "\n".join(lines)


def _status_command(args: argparse.Namespace) -> int:
    from .store import ExperimentStore

    store = ExperimentStore(args.output_dir.resolve() / "training_runs")
    if args.experiment is None:
        ids = store.list_ids()
        experiments = [store.load(experiment_id) for experiment_id in ids]
        if args.json:
            print(json.dumps([{"id": e.id, "status": e.status.value, "goal": e.goal} for e in experiments], indent=2))
        elif not experiments:
            print(f"No experiments under {store.root}.")
        for experiment in experiments if not args.json else []:
            print(f"{experiment.id}  {experiment.status.value}  stages done: {len(experiment.completed_stages)}/{len(experiment.plan.stages)}  {experiment.goal!r}")
        return EXIT_OK

    experiment = store.load(args.experiment)
    if args.json:
        print(experiment.model_dump_json(indent=2))
        return EXIT_OK
    print(format_plan(experiment.id, experiment.plan))
    print(f"status: {experiment.status.value}; stages done: {', '.join(s.value for s in experiment.completed_stages) or 'none'}")
    for run in experiment.runs:
        print(f"  {run.run_id}: {run.status}, job {run.job_id}, metrics {run.metrics_summary}")
    for score in experiment.baseline_scores:
        print(f"  base: {score.benchmark} {score.metric} {score.value:.3f} ({score.num_passed}/{score.num_samples})")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
