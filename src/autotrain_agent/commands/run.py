"""`autotrain-agent run GOAL` (or just `autotrain-agent GOAL`): plan, then run or resume an experiment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Settings
from ..recipes import DEFAULT_CPU_EVAL_LIMIT, DEFAULT_MODEL, PlanOverrides, make_plan
from ..state import Plan
from . import EXIT_FAILED, EXIT_OK

NAME = "run"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `run` subcommand."""
    run = subparsers.add_parser(NAME, parents=parents, help="run an experiment (the default command)", description="Run or resume an experiment.")
    run.add_argument("goal", help='the goal in plain words, e.g. "improve code solving with SFT"')
    run.add_argument("--model", help=f"base model: Hub id or local folder (default {DEFAULT_MODEL})")
    run.add_argument("--dataset", help="training data: Hub id, local JSONL/JSON/CSV/Parquet file or folder")
    run.add_argument("--dataset-config", help="Hub dataset configuration name")
    run.add_argument("--method", help="training method: sft (dpo and grpo are planned)")
    run.add_argument("--benchmark", help="benchmark: humaneval")
    run.add_argument("--max-steps", type=int, help="optimizer steps of the training run (default 30)")
    run.add_argument(
        "--eval-limit",
        type=int,
        help=f"HumanEval problems to score: the first N by task number (default {DEFAULT_CPU_EVAL_LIMIT}; 0 = all 164)",
    )
    run.add_argument("--eval-engine", choices=("llama.cpp", "transformers"), help="generation engine for evaluation (default llama.cpp)")
    run.add_argument("--eval-checkpoints", choices=("final", "all"),
                     help="score only the final checkpoint, or every saved one and keep the best (default final)")
    run.add_argument("--no-lora", action="store_true", help="full fine-tune instead of LoRA")
    run.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder for training_runs/ and training_reports/ (default: current folder)")
    run.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    run.add_argument("--json", action="store_true", help="with --plan-only: print the plan as JSON")
    run.add_argument("--max-agent-steps", type=int, default=40, help="stop the agent after this many tool calls (default 40)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Plan the experiment, print the plan, then run it to a terminal status unless `--plan-only` is given."""
    from ..hub import is_hub_reachable
    from ..loop import open_experiment, run_experiment, summarize
    from ..preflight import check_plan_inputs

    overrides = PlanOverrides(
        model=args.model,
        dataset=args.dataset,
        dataset_config=args.dataset_config,
        method=args.method,
        benchmark=args.benchmark,
        max_steps=args.max_steps,
        eval_limit=args.eval_limit,
        eval_engine=args.eval_engine,
        eval_checkpoints=args.eval_checkpoints,
        use_lora=not args.no_lora,
    )
    hub_reachable = is_hub_reachable()
    plan = make_plan(args.goal, overrides, hub_reachable=hub_reachable)
    check_plan_inputs(plan, hub_reachable=hub_reachable)
    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
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
