# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "torch>=2.13",
#     "transformers>=5.25,<6",
#     "trl>=1.16,<2",
#     "peft>=0.21,<1",
#     "datasets>=5.2,<6",
#     "trackio>=0.43,<1",
# ]
# ///
"""Train one run with TRL and record its status, progress and metrics next to the checkpoints.

A backend runs this script for the `submit_run` tool of autotrain-agent. SFT and DPO runs never import
autotrain_agent, so they work on any machine that has the dependencies above. GRPO runs import their reward
functions, and the sandbox that runs generated code, from the installed autotrain_agent package.

    python tools/train.py --config run_config.json

The JSON config holds: run_id, model_path, dataset_path (JSONL: `messages` or `prompt`/`completion` rows for SFT,
`prompt`/`chosen`/`rejected` for DPO, `prompt` plus the reward functions' columns for GRPO), output_dir, method
("sft", "dpo" or "grpo"), max_steps (or null to train num_train_epochs), per_device_train_batch_size, gradient_accumulation_steps,
learning_rate, lr_scheduler_type, warmup_ratio, max_length, lora ({r, alpha, dropout, target_modules} or null for a
full fine-tune), logging_steps, save_steps, save_total_limit, seed, trackio_project, trackio_run_name,
assistant_only_loss, gradient_checkpointing, use_cpu (null picks the CPU when CUDA is missing),
max_nonfinite_losses (stop after this many consecutive non-finite logged losses; default 3),
completion_only_loss (learn only the last assistant turn of each `messages` row), train_sampling_strategy
("random", or "group_by_length" for less padding), num_threads (torch CPU threads; null uses OMP_NUM_THREADS,
else one per two cores), hub_repo (push every checkpoint to this private Hub repository while training; null
keeps them local) and init_adapter_path (a saved LoRA adapter to keep training, with a new schedule and a fresh
optimizer; null starts a new adapter from `lora`), dataset_repo (a Hub dataset repository that holds
dataset_path, downloaded with the job's HF_TOKEN; null reads dataset_path from this machine). DPO and GRPO read beta
(DPO's preference strength, default 0.1; GRPO's KL weight, default 0). GRPO reads reward_functions (specs such as
"code_pass_fraction", "module:function" or "file.py:function"), adapt_reward_functions (pass message text and drop
unknown keywords), num_generations, max_completion_length and temperature.

Files written under output_dir:
    status.json        {run_id, state, pid, started_at, finished_at, exit_reason, failure_kind, error}, atomically.
    progress.json      {step, max_steps, epoch, loss, learning_rate, elapsed_s, eta_s, tokens_seen} at each log.
    metrics.jsonl      every logged metric dict with its global step: a local copy that survives a tracker failure.
    train_summary.json TRL's end-of-run metrics plus `final_loss` and `tokens_seen`. TRL's `train_loss` is the mean over the run.
    checkpoint-N/      checkpoints every save_steps.
    final/             the LoRA adapter (or the full model) and the tokenizer.

Exit status: 0 when the run succeeded, 1 when it failed, 2 for an invalid config.
"""

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger("train")

SUPPORTED_METHODS = ("sft", "dpo", "grpo")
REQUIRED_KEYS = ("run_id", "model_path", "dataset_path", "output_dir")
DEFAULTS = {
    "method": "sft",
    "max_steps": None,
    "num_train_epochs": 1.0,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "linear",
    "warmup_ratio": 0.0,
    "max_length": 1024,
    "lora": None,
    "logging_steps": 1,
    "save_steps": 500,
    "save_total_limit": None,
    "seed": 42,
    "trackio_project": "autotrain-agent",
    "trackio_run_name": None,
    "assistant_only_loss": False,
    "completion_only_loss": False,
    "gradient_checkpointing": False,
    "use_cpu": None,
    "max_nonfinite_losses": 3,
    "train_sampling_strategy": "random",
    "num_threads": None,
    "hub_repo": None,
    "init_adapter_path": None,
    "dataset_repo": None,
    "beta": None,
    "num_generations": 4,
    "max_completion_length": 256,
    "temperature": 1.0,
    "reward_functions": [],
    "adapt_reward_functions": False,
}


class RunConfigError(ValueError):
    """The run config is missing a key or contains an invalid value."""


class NonFiniteLossError(RuntimeError):
    """The training loss stayed NaN or infinite for too many logged steps."""


class JobTerminated(BaseException):
    """The process received SIGTERM or SIGINT. It is a BaseException so that no library handler swallows it."""


def main(argv: list[str] | None = None) -> int:
    """Run the training job described by `--config` and return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="path of the run config (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        config = load_run_config(args.config)
    except RunConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    status = StatusFile(Path(config["output_dir"]) / "status.json", run_id=config["run_id"])
    status.write(state="running")
    _install_signal_handlers()
    try:
        summary = train(config)
    except JobTerminated as err:
        status.write(state="failed", exit_reason="terminated by a signal", failure_kind="killed", error=str(err))
        return 1
    except BaseException as err:  # noqa: BLE001 - every failure must reach status.json before the process exits.
        traceback.print_exc()
        failure_kind = classify_failure(err)
        status.write(state="failed", exit_reason="training raised", failure_kind=failure_kind, error=_last_line(err))
        return 1

    status.write(state="succeeded", exit_reason=f"trained {summary['global_step']} steps")
    return 0


def load_run_config(path: Path) -> dict:
    """Read the JSON run config, fill defaults and check values.

    Raises:
        RunConfigError: If the file is unreadable, a required key is missing or a value is invalid.
    """
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunConfigError(f"cannot read run config {str(path)!r}: {err}") from err
    if not isinstance(raw, dict):
        raise RunConfigError(f"run config {str(path)!r} must hold a JSON object, got {type(raw).__name__}")

    missing = [key for key in REQUIRED_KEYS if raw.get(key) in (None, "")]
    if missing:
        raise RunConfigError(f"run config is missing {', '.join(missing)}: add them to {str(path)!r}")
    # A null value means "use the default", except for the two keys where null is itself a choice.
    explicit = {key: value for key, value in raw.items() if value is not None or key in ("lora", "max_steps")}
    config = {**DEFAULTS, **explicit}

    if config["method"] not in SUPPORTED_METHODS:
        raise RunConfigError(
            f"`method` {config['method']!r} is not supported by this script; use one of {list(SUPPORTED_METHODS)}"
        )
    if config["max_steps"] is not None and (not isinstance(config["max_steps"], int) or config["max_steps"] <= 0):
        raise RunConfigError(f"`max_steps` must be a positive integer or null, got {config['max_steps']!r}")
    if not 0 <= float(config["warmup_ratio"]) < 1:
        raise RunConfigError(f"`warmup_ratio` must be in [0, 1), got {config['warmup_ratio']!r}")
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "logging_steps", "save_steps"):
        if not isinstance(config[key], int) or config[key] <= 0:
            raise RunConfigError(f"`{key}` must be a positive integer, got {config[key]!r}")
    if config["lora"] is not None:
        _check_lora(config["lora"])
    _check_method_settings(config)
    if not config["dataset_repo"] and not Path(config["dataset_path"]).is_file():
        raise RunConfigError(f"`dataset_path` {config['dataset_path']!r} is not a file; write the JSONL dataset first")
    return config


def _check_lora(lora: object) -> None:
    if not isinstance(lora, dict):
        raise RunConfigError(f"`lora` must be an object with r, alpha, dropout, target_modules, or null, got {lora!r}")
    if not isinstance(lora.get("r"), int) or lora["r"] <= 0:
        raise RunConfigError(f"`lora.r` must be a positive integer, got {lora.get('r')!r}")


def _check_method_settings(config: dict) -> None:
    if config["beta"] is not None and (not isinstance(config["beta"], (int, float)) or config["beta"] < 0):
        raise RunConfigError(f"`beta` must be a non-negative number or null, got {config['beta']!r}")
    if config["method"] != "grpo":
        return
    if not config["reward_functions"]:
        raise RunConfigError("`reward_functions` must name at least one reward function for GRPO")
    generations = config["num_generations"]
    if not isinstance(generations, int) or generations < 2:
        raise RunConfigError(f"`num_generations` must be an integer of at least 2, got {generations!r}")
    batch = config["per_device_train_batch_size"] * config["gradient_accumulation_steps"]
    if batch % generations:
        raise RunConfigError(
            f"`per_device_train_batch_size` x `gradient_accumulation_steps` ({batch}) must be a multiple of "
            f"`num_generations` ({generations}): each prompt's completions are scored as one group"
        )
    if not isinstance(config["max_completion_length"], int) or config["max_completion_length"] <= 0:
        raise RunConfigError(f"`max_completion_length` must be a positive integer, got {config['max_completion_length']!r}")


def train(config: dict) -> dict:
    """Train with the config's method and return the end-of-run summary."""
    if config["method"] == "dpo":
        return _train_dpo(config)
    if config["method"] == "grpo":
        return _train_grpo(config)
    return _train_sft(config)


def _train_sft(config: dict) -> dict:
    """Train with TRL's SFTTrainer and return the end-of-run summary."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    _set_torch_threads(torch, config["num_threads"])
    output_dir = Path(config["output_dir"])
    use_cpu = config["use_cpu"] if config["use_cpu"] is not None else not torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    model = AutoModelForCausalLM.from_pretrained(
        config["model_path"], dtype=torch.float32 if use_cpu else torch.bfloat16
    )
    dataset = load_dataset("json", data_files=fetch_dataset_file(config), split="train")
    if config["completion_only_loss"]:
        dataset = _split_last_assistant_turn(dataset)

    sft_config = SFTConfig(
        **_common_trainer_arguments(config, use_cpu=use_cpu),
        max_length=config["max_length"],
        assistant_only_loss=config["assistant_only_loss"],
        completion_only_loss=bool(config["completion_only_loss"]),
        include_num_input_tokens_seen="all",
        # "group_by_length" batches sequences of similar length, so less compute goes to padding.
        train_sampling_strategy=config["train_sampling_strategy"],
    )
    peft_config = _build_peft_config(config["lora"])
    if config["init_adapter_path"]:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config["init_adapter_path"], is_trainable=True)
        peft_config = None
    progress = ProgressCallback(output_dir, max_nonfinite_losses=config["max_nonfinite_losses"])
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
    )
    return _train_and_save(trainer, progress, tokenizer, config)


def _train_dpo(config: dict) -> dict:
    """Train with TRL's DPOTrainer on `prompt`/`chosen`/`rejected` rows and return the end-of-run summary.

    The reference model is TRL's: with LoRA it is the base model with the adapter disabled, so no second copy of
    the weights is loaded. For a full fine-tune TRL copies the model.
    """
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    model, tokenizer, use_cpu, peft_config = _load_policy_model(config)
    dataset = load_dataset("json", data_files=str(config["dataset_path"]), split="train")
    dpo_config = DPOConfig(
        **_common_trainer_arguments(config, use_cpu=use_cpu),
        beta=float(config["beta"]) if config["beta"] is not None else 0.1,
        max_length=config["max_length"],
    )
    progress = ProgressCallback(Path(config["output_dir"]), max_nonfinite_losses=config["max_nonfinite_losses"])
    trainer = DPOTrainer(
        model=model,
        args=dpo_config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
    )
    return _train_and_save(trainer, progress, tokenizer, config)


def _train_grpo(config: dict) -> dict:
    """Train with TRL's GRPOTrainer on `prompt` rows scored by the config's reward functions.

    The reward functions are imported from the installed autotrain_agent package (or a file named in the spec),
    each wrapped in its reward adapter, so a wrong count or a non-finite reward stops the run with the function's
    name. The dataset's other columns reach the reward functions as keyword arguments.
    """
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    # The script's inline metadata does not list autotrain_agent, so GRPO runs only where the package is installed:
    # `make_plan` and the pre-launch checks reject GRPO on Hugging Face Jobs.
    from autotrain_agent.rewards.registry import load_reward_functions

    reward_functions = load_reward_functions(config["reward_functions"], adapt=bool(config["adapt_reward_functions"]))
    model, tokenizer, use_cpu, peft_config = _load_policy_model(config)
    dataset = load_dataset("json", data_files=str(config["dataset_path"]), split="train")
    grpo_config = GRPOConfig(
        **_common_trainer_arguments(config, use_cpu=use_cpu),
        num_generations=config["num_generations"],
        max_completion_length=config["max_completion_length"],
        temperature=float(config["temperature"]),
        beta=float(config["beta"]) if config["beta"] is not None else 0.0,
    )
    progress = ProgressCallback(Path(config["output_dir"]), max_nonfinite_losses=config["max_nonfinite_losses"])
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions,
        args=grpo_config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
    )
    return _train_and_save(trainer, progress, tokenizer, config)


def _load_policy_model(config: dict):
    """Load the tokenizer and the model to train; return them with `use_cpu` and the LoRA config for TRL.

    A model that continues a saved adapter comes back as a trainable `PeftModel`, with no LoRA config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _set_torch_threads(torch, config["num_threads"])
    use_cpu = config["use_cpu"] if config["use_cpu"] is not None else not torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=torch.float32 if use_cpu else torch.bfloat16)
    if not config["init_adapter_path"]:
        return model, tokenizer, use_cpu, _build_peft_config(config["lora"])
    from peft import PeftModel

    return PeftModel.from_pretrained(model, config["init_adapter_path"], is_trainable=True), tokenizer, use_cpu, None


def _common_trainer_arguments(config: dict, *, use_cpu: bool) -> dict:
    """Return the TRL config arguments that every method shares: schedule, logging, saving, Trackio, device."""
    return dict(
        output_dir=str(config["output_dir"]),
        max_steps=config["max_steps"] if config["max_steps"] is not None else -1,
        num_train_epochs=float(config["num_train_epochs"]),
        per_device_train_batch_size=config["per_device_train_batch_size"],
        gradient_accumulation_steps=config["gradient_accumulation_steps"],
        learning_rate=float(config["learning_rate"]),
        lr_scheduler_type=config["lr_scheduler_type"],
        # transformers 5 dropped `warmup_ratio`: a float in [0, 1) passed as `warmup_steps` is the ratio.
        warmup_steps=float(config["warmup_ratio"]),
        logging_steps=config["logging_steps"],
        save_steps=config["save_steps"],
        save_total_limit=config["save_total_limit"],
        seed=config["seed"],
        report_to="trackio",
        project=config["trackio_project"],
        run_name=config["trackio_run_name"] or config["run_id"],
        # transformers 5.25 renamed `gradient_checkpointing` to `activation_checkpointing` and warns on the old name.
        activation_checkpointing=config["gradient_checkpointing"],
        use_cpu=use_cpu,
        bf16=not use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **hub_push_arguments(config["hub_repo"]),
    )


def _train_and_save(trainer, progress: "ProgressCallback", tokenizer, config: dict) -> dict:
    """Train, stop on a non-finite loss streak, save the final model and tokenizer, and write the summary."""
    result = trainer.train()
    if progress.nonfinite_streak >= config["max_nonfinite_losses"]:
        raise NonFiniteLossError(
            f"loss was non-finite for {progress.nonfinite_streak} consecutive logged steps up to step "
            f"{trainer.state.global_step}; lower `learning_rate` or use fp32/bf16"
        )

    output_dir = Path(config["output_dir"])
    final_dir = output_dir / "final"
    trainer.save_model(str(final_dir))
    tokenizer.save_pretrained(str(final_dir))
    summary = {
        **result.metrics,
        "global_step": result.global_step,
        "final_loss": progress.last_loss,
        "tokens_seen": trainer.state.num_input_tokens_seen,
    }
    _write_json_atomic(output_dir / "train_summary.json", summary)
    logger.info("Training summary (train_loss is the mean over the run): %s", json.dumps(summary))
    return summary


def fetch_dataset_file(config: dict) -> str:
    """Return the local path of the JSONL dataset, downloading it first when `dataset_repo` names a Hub repository."""
    if not config["dataset_repo"]:
        return str(config["dataset_path"])
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=config["dataset_repo"], filename=config["dataset_path"], repo_type="dataset")


def hub_push_arguments(hub_repo: str | None) -> dict:
    """Return the trainer arguments that push every checkpoint to `hub_repo` while training, or none.

    A Hugging Face Jobs machine's disk is gone when the job ends, so checkpoints must leave it as they are saved.
    """
    if not hub_repo:
        return {}
    return {"push_to_hub": True, "hub_model_id": hub_repo, "hub_strategy": "every_save", "hub_private_repo": True}


def _build_peft_config(lora: dict | None):
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora.get("alpha", 2 * lora["r"]),
        lora_dropout=lora.get("dropout", 0.0),
        target_modules=lora.get("target_modules") or "all-linear",
        task_type="CAUSAL_LM",
    )


def _split_last_assistant_turn(dataset):
    """Turn `messages` rows into conversational prompt-completion rows, so only the final reply is learned.

    Unlike `assistant_only_loss`, this needs no `{% generation %}` markers in the chat template.
    """
    if "messages" not in dataset.column_names:
        raise RunConfigError(
            f"`completion_only_loss` needs a `messages` column, got columns {dataset.column_names}; "
            f"set it to false for prompt-completion data"
        )

    def split(row):
        messages = row["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise RunConfigError("`completion_only_loss` needs every conversation to end with an assistant turn")
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    return dataset.map(split, remove_columns=dataset.column_names)


def _set_torch_threads(torch, configured: int | None) -> None:
    # Two torch threads on a two-core machine made tiny runs 5-10x slower than one thread, so small CPUs get one
    # thread per two cores unless the config or OMP_NUM_THREADS says otherwise. A 135M model is the opposite case:
    # two threads trained it about 1.4x faster than one on two cores.
    requested = os.environ.get("OMP_NUM_THREADS")
    if configured is not None:
        threads = int(configured)
    elif requested and requested.isdigit():
        threads = int(requested)
    else:
        threads = max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(threads)


def classify_failure(err: BaseException) -> str:
    """Map an exception raised by training to a failure kind: "oom", "nan", "killed" or "crash"."""
    import torch

    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return "oom"
    if isinstance(err, RuntimeError) and "out of memory" in str(err).lower():
        return "oom"
    if isinstance(err, NonFiniteLossError):
        return "nan"
    if isinstance(err, (JobTerminated, KeyboardInterrupt)):
        return "killed"
    return "crash"


def _last_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    message = lines[-1] if lines else ""
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def _install_signal_handlers() -> None:
    def terminate(signum, _frame):
        raise JobTerminated(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)


class StatusFile:
    """The run's `status.json`, rewritten atomically at each state change."""

    def __init__(self, path: Path, *, run_id: str):
        self.path = path
        self.record = {
            "run_id": run_id,
            "state": "running",
            "pid": os.getpid(),
            "started_at": _now_iso(),
            "finished_at": None,
            "exit_reason": None,
            "failure_kind": None,
            "error": None,
        }

    def write(self, *, state: str, exit_reason: str | None = None, failure_kind: str | None = None, error: str | None = None) -> None:
        """Record `state` and, for a terminal state, the finish time and reason."""
        self.record.update(state=state, exit_reason=exit_reason, failure_kind=failure_kind, error=error)
        if state != "running":
            self.record["finished_at"] = _now_iso()
        _write_json_atomic(self.path, self.record)


class ProgressCallback(TrainerCallback):
    """Write `progress.json` and append to `metrics.jsonl` at each logging step.

    A failed write is logged and skipped, so bookkeeping never ends training. The callback stops training once the
    loss has been non-finite for `max_nonfinite_losses` consecutive logs.
    """

    def __init__(self, output_dir: Path, *, max_nonfinite_losses: int):
        self.output_dir = output_dir
        self.max_nonfinite_losses = max_nonfinite_losses
        self.started_monotonic = time.monotonic()
        self.last_loss: float | None = None
        self.last_learning_rate: float | None = None
        self.nonfinite_streak = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started_monotonic = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" in logs:
            loss = float(logs["loss"])
            self.last_loss = loss
            self.nonfinite_streak = 0 if math.isfinite(loss) else self.nonfinite_streak + 1
            if self.nonfinite_streak >= self.max_nonfinite_losses:
                control.should_training_stop = True
        if "learning_rate" in logs:
            self.last_learning_rate = float(logs["learning_rate"])

        try:
            self._record(state, logs)
        except OSError as err:
            logger.warning("Could not record progress at step %d: %s", state.global_step, err)

    def _record(self, state, logs: dict) -> None:
        elapsed_s = time.monotonic() - self.started_monotonic
        step = state.global_step
        eta_s = elapsed_s / step * (state.max_steps - step) if step and state.max_steps else None
        progress = {
            "step": step,
            "max_steps": state.max_steps,
            "epoch": state.epoch,
            "loss": logs.get("loss", self.last_loss),
            "learning_rate": self.last_learning_rate,
            "elapsed_s": round(elapsed_s, 3),
            "eta_s": round(eta_s, 3) if eta_s is not None else None,
            "tokens_seen": state.num_input_tokens_seen,
        }
        _write_json_atomic(self.output_dir / "progress.json", progress)
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **logs}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
