"""`autotrain-agent run GOAL` (or just `autotrain-agent GOAL`): plan, then run or resume an experiment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..approval import BudgetApprover, ConsoleApprover
from ..config import Settings
from ..errors import ConfigError
from ..quick_test import DEFAULT_QUICK_TEST_SAMPLES
from ..recipes import DEFAULT_CPU_EVAL_LIMIT, DEFAULT_MODEL, PlanOverrides, describe_methods, make_plan
from ..state import Plan, Stage, with_export_stage
from . import EXIT_FAILED, EXIT_OK

NAME = "run"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `run` subcommand."""
    run = subparsers.add_parser(NAME, parents=parents, help="run an experiment (the default command)", description="Run or resume an experiment.")
    run.add_argument("goal", help='the goal in plain words, e.g. "improve code solving with SFT"')
    run.add_argument("--model", action="append", help=f"base model: Hub id or local folder (default {DEFAULT_MODEL}); repeat to compare models")
    run.add_argument("--dataset", action="append",
                     help="training data: Hub id, local JSONL/JSON/CSV/Parquet file or folder; repeat to give each pipeline stage its own, in order, or to compare datasets")
    run.add_argument("--dataset-config", help="Hub dataset configuration name")
    run.add_argument("--map", dest="mapping", help="rename dataset columns before validation and training, source=target pairs: question=prompt,answer=completion")
    run.add_argument("--method", action="append",
                     help=f"training method: {describe_methods()} (default: the one the goal names, else sft); repeat to compare methods")
    run.add_argument("--reward", action="append", dest="rewards", metavar="SPEC",
                     help="GRPO reward function, repeatable: code_pass_fraction, code_format, module:function or file.py:function")
    run.add_argument("--adapt-rewards", action="store_true",
                     help="pass message text to reward functions and drop keywords they do not accept, and record it")
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
    run.add_argument("--export", action="store_true", help="after evaluation, export verified F16 and Q4_K_M GGUF files")
    run.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder for training_runs/ and training_reports/ (default: current folder)")
    run.add_argument("--plan-only", action="store_true", help="print the plan (of a study: every experiment and the total estimate) and stop")
    run.add_argument("--json", action="store_true", help="with --plan-only: print the plan as JSON (rejected without --plan-only)")
    run.add_argument("--max-agent-steps", type=int, default=40, help="stop the agent after this many tool calls (default 40)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--backend", choices=("local", "hf-jobs"), default="local", help="where training runs: this machine (free, default) or Hugging Face Jobs (paid)")
    run.add_argument("--hub-repo", help="with --backend hf-jobs: Hub repository that receives the checkpoints, e.g. me/qwen3-code-sft")
    run.add_argument("--budget", type=float, metavar="USD", help="most money the experiment may spend, in US dollars (spent plus committed)")
    run.add_argument("--approve-under", type=float, metavar="USD", help="approve paid runs estimated under this many US dollars without asking")
    run.add_argument("--require-approval", action="store_true", help="ask for approval before local runs too")
    run.add_argument("--params", help="parameter count of the model, e.g. 7B or 135M, when it cannot be found")
    run.add_argument("--no-quick-test", action="store_true", help="submit the full paid run without a quick test first")
    run.add_argument(
        "--quick-test",
        type=int,
        metavar="N",
        help=f"rows of the quick test run before a paid run: a few steps that catch script, data and memory errors "
        f"and measure the speed (default {DEFAULT_QUICK_TEST_SAMPLES})",
    )
    add_unattended_arguments(run)
    run.add_argument(
        "--llm",
        metavar="SPEC",
        help="plan with an LLM instead of the rules: hf:MODEL (Inference Providers), litellm:MODEL, openai:MODEL "
        "(any OpenAI-compatible server) or transformers:PATH; keys come from HF_TOKEN, OPENAI_API_KEY and the like",
    )
    run.add_argument("--llm-max-tokens", type=int, default=1024, metavar="N", help="maximum tokens per LLM reply (default 1024)")
    run.add_argument("--llm-base-url", metavar="URL", help="server URL for --llm openai:, litellm: or hf:, e.g. http://127.0.0.1:8080/v1")
    run.set_defaults(handler=run_command)


def add_unattended_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--policy`, `--notify` and `--notify-url`, shared by `run` and `resume`."""
    parser.add_argument(
        "--policy",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="YAML rule file applied after the shipped default; rules replace default ones by name (repeatable)",
    )
    parser.add_argument("--notify", metavar="COMMAND", help="command run with a JSON event on stdin on approvals, policy stops, failures and the end")
    parser.add_argument("--notify-url", metavar="URL", help="URL that receives the same JSON event as an HTTP POST")


def apply_unattended_arguments(ctx, args: argparse.Namespace) -> None:
    """Validate the rule files and store them on the experiment; set the notification targets.

    Raises:
        PolicyError: If a rule file is invalid.
    """
    from ..policy import load_policy

    policy_files = [str(path.resolve()) for path in args.policy]
    load_policy([Path(path) for path in policy_files or ctx.experiment.policy_files])
    if policy_files and policy_files != ctx.experiment.policy_files:
        ctx.experiment.policy_files = policy_files
        ctx.record("policy_files_set", files=policy_files)
    ctx.settings.notify_command = args.notify
    ctx.settings.notify_url = args.notify_url


def run_command(args: argparse.Namespace) -> int:
    """Plan the experiment, print the plan, then run it to a terminal status unless `--plan-only` is given."""
    from ..llm import build_llm, parse_llm_spec
    from ..loop import ApprovalLimits, open_experiment

    from ..study_goals import read_study_goal

    check_run_arguments(args)
    request = read_study_goal(args.goal, models=args.model or [], datasets=args.dataset or [], methods=args.method or [])
    if request.kind is not None:
        from .run_study import run_study_command

        return run_study_command(args, request)
    # Outside a study no flag is repeated, because `read_study_goal` reads any repeated flag as a comparison.
    args.model, args.dataset, args.method = (values[0] if values else None for values in (args.model, args.dataset, args.method))
    args.export = args.export or request.export
    llm_spec = parse_llm_spec(args.llm, base_url=args.llm_base_url) if args.llm else None
    model = build_llm(llm_spec, max_tokens=args.llm_max_tokens) if llm_spec else None
    plan, hub_reachable = plan_from_args(args, model=model)
    if args.export:
        plan.stages = with_export_stage(plan.stages)
    settings = Settings(output_dir=args.output_dir.resolve(), progress=not args.no_progress)
    if plan.backend == "hf-jobs":
        _size_for_jobs(plan, args, settings, hub_reachable=hub_reachable)
    limits = ApprovalLimits(budget_usd=args.budget, approve_under_usd=args.approve_under, require_approval=args.require_approval)
    ctx, resumed = open_experiment(plan, settings, limits=limits)
    if args.export and Stage.EXPORT not in ctx.experiment.plan.stages:
        # A resumed experiment keeps its saved plan; a finished one is exported with `autotrain-agent export`.
        ctx.experiment.plan.stages = with_export_stage(ctx.experiment.plan.stages)
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
    return drive_experiment(ctx, args, llm_spec=llm_spec, model=model)


def plan_from_args(args: argparse.Namespace, *, model=None) -> tuple[Plan, bool]:
    """Return the plan for the parsed flags and whether the Hub is reachable.

    The plan is proposed by `model` when one is given, by the rules otherwise.

    Raises:
        ConfigError, ModelNotFoundError, DatasetError: If the goal cannot be planned or its inputs are missing.
    """
    from ..hub import is_hub_reachable
    from ..llm_plan import propose_plan
    from ..preflight import check_plan_inputs

    overrides = overrides_from_args(args)
    hub_reachable = is_hub_reachable()
    if model is not None:
        plan = propose_plan(args.goal, model, overrides=overrides, hub_reachable=hub_reachable)
    else:
        plan = make_plan(args.goal, overrides, hub_reachable=hub_reachable)
    check_plan_inputs(plan, hub_reachable=hub_reachable)
    return plan, hub_reachable


def overrides_from_args(args: argparse.Namespace) -> PlanOverrides:
    """Return the choices fixed by flags; `model`, `dataset` and `method` must be single values or `None` here."""
    from .validate import parse_column_mapping

    return PlanOverrides(
        model=args.model,
        dataset=args.dataset,
        dataset_config=args.dataset_config,
        column_mapping=parse_column_mapping(args.mapping) or None,
        method=args.method,
        benchmark=args.benchmark,
        max_steps=args.max_steps,
        eval_limit=args.eval_limit,
        eval_engine=args.eval_engine,
        eval_checkpoints=args.eval_checkpoints,
        use_lora=not args.no_lora,
        backend=args.backend,
        hub_repo=args.hub_repo,
        reward_functions=args.rewards,
        adapt_reward_functions=args.adapt_rewards,
    )


def drive_experiment(ctx, args: argparse.Namespace, *, llm_spec=None, model=None) -> int:
    """Hold the experiment's lock, run it to a terminal status, print and send the summary, return the exit status."""
    from ..loop import run_experiment, summarize
    from ..notify import notify
    from ..prompts import render_prompt

    if ctx.approver is None:
        saved = ctx.experiment
        ctx.approver = BudgetApprover(saved.approve_under_usd) if saved.approve_under_usd is not None else ConsoleApprover()
    instructions = None
    if llm_spec is not None:
        print(f"Planner: LLM {llm_spec.describe()}")
        instructions = render_prompt("planner", experiment_id=ctx.experiment.id, goal=ctx.experiment.goal)
    with ctx.store.lock(ctx.experiment.id):
        apply_unattended_arguments(ctx, args)
        if llm_spec is not None:
            ctx.decide(by="system", action=f"plan with the LLM {llm_spec.describe()}", reason="chosen with --llm")
        result = run_experiment(ctx, model=model, max_steps=args.max_agent_steps, instructions=instructions)
    print()
    print(summarize(ctx))
    if result.reason:
        print(f"Stopped: {result.state} ({result.reason}).")
    notify(ctx, "experiment_finished", summarize(ctx))
    return EXIT_OK if result.state == "succeeded" else EXIT_FAILED


def _size_for_jobs(plan: Plan, args: argparse.Namespace, settings: Settings, *, hub_reachable: bool) -> None:
    """Resolve the model size and choose the flavor; time and cost are estimated at submission, once rows are known."""
    from ..estimate import choose_job_hardware

    api = None
    if hub_reachable:
        from huggingface_hub import HfApi

        api = HfApi()
    choose_job_hardware(plan, cache_dir=settings.cache_dir, params_override=args.params, api=api)
    if args.no_quick_test:
        plan.reasons.append("no quick test: --no-quick-test submits the full run after its approval")
    else:
        plan.quick_test_samples = args.quick_test or DEFAULT_QUICK_TEST_SAMPLES
        plan.reasons.append(
            f"quick test of {plan.quick_test_samples} rows before the full run, on this machine when the model fits "
            f"there, else on the cheapest flavor after its own approval; its speed calibrates the estimate"
        )


def check_run_arguments(args: argparse.Namespace) -> None:
    """Raise if flags contradict each other: `--json` without `--plan-only`, or the quick test flags.

    Raises:
        ConfigError: If `--json` is given without `--plan-only`, or `--quick-test` is not positive, is given with
            `--no-quick-test`, or without a paid backend.
    """
    if args.json and not args.plan_only:
        raise ConfigError(
            "`--json` prints the plan and applies only with `--plan-only`; for the state of a running or finished "
            "experiment, run `autotrain-agent status EXPERIMENT --json`."
        )
    if args.quick_test is None:
        return
    if args.quick_test <= 0:
        raise ConfigError(f"`--quick-test` must be a positive number of rows, got {args.quick_test}.")
    if args.no_quick_test:
        raise ConfigError("`--quick-test` and `--no-quick-test` contradict each other; pass one of them.")
    if args.backend != "hf-jobs":
        raise ConfigError(f"`--quick-test` applies only to paid runs with `--backend hf-jobs`, got `--backend {args.backend}`.")


def _method_lines(plan: Plan) -> list[str]:
    hp = plan.hyperparameters
    if plan.method == "dpo":
        return [f"  dpo:             beta {hp.beta:g}, reference model: the base model"]
    if plan.method == "grpo":
        return [
            f"  grpo:            {hp.num_generations} generations per prompt, up to {hp.max_completion_length} tokens, "
            f"temperature {hp.temperature:g}, KL beta {hp.beta:g}",
            f"  rewards:         {', '.join(plan.reward_functions)}" + (" (adapted)" if plan.adapt_reward_functions else ""),
        ]
    return []


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
        f"  hyperparameters: {f'{hp.max_steps} steps' if hp.max_steps else f'{hp.num_train_epochs:g} epochs'}, batch {hp.per_device_train_batch_size} x {hp.gradient_accumulation_steps} "
        f"accumulation, lr {hp.learning_rate:g}, max length {hp.max_length} tokens",
        *_method_lines(plan),
        f"  benchmark:       {benchmark}, engine {plan.eval_engine}",
        *(["  export:          F16 and Q4_K_M GGUF, verified with llama.cpp"] if Stage.EXPORT in plan.stages else []),
        f"  backend:         {plan.backend} ({plan.hardware}), {'free' if plan.backend == 'local' else 'paid, approved before submission'}",
        f"  expected time:   {estimate}",
        "  why:",
        *(f"    - {reason}" for reason in plan.reasons),
    ]
    return "\n".join(lines)
