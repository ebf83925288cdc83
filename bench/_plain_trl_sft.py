"""Train a LoRA adapter with TRL's SFTTrainer at its default settings: the reference of the throughput benchmark.

    python bench/_plain_trl_sft.py --config plain.json

Only what defines what is learned comes from the config: model, data, learning rate and schedule, batch size,
accumulation, epochs, maximum length, seed and the LoRA adapter. Everything that only changes speed (gradient
checkpointing, sampling order, padding, threads, data loading) stays at TRL's and torch's defaults, as a user who
follows TRL's quick start would leave it. The `messages` rows are split into prompt and completion, the format for
which TRL's default `completion_only_loss=None` learns the completion only, as the job under comparison does.
Writes `summary.json` (`train_runtime` in seconds, `train_loss`) and the adapter under `final/` in `output_dir`.
"""

import argparse
import json
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="JSON file with the keys listed above")
    config = json.loads(parser.parse_args().config.read_text())

    from datasets import load_dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    rows = load_dataset("json", data_files=config["dataset_path"], split="train")
    rows = rows.map(
        lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
        remove_columns=rows.column_names,
    )
    lora = config["lora"]
    trainer = SFTTrainer(
        model=config["model_path"],
        train_dataset=rows,
        peft_config=LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"], task_type="CAUSAL_LM",
        ),
        args=SFTConfig(
            output_dir=config["output_dir"],
            use_cpu=True,
            learning_rate=config["learning_rate"],
            lr_scheduler_type=config["lr_scheduler_type"],
            warmup_steps=config["warmup_ratio"],
            per_device_train_batch_size=config["per_device_train_batch_size"],
            gradient_accumulation_steps=config["gradient_accumulation_steps"],
            num_train_epochs=config["num_train_epochs"],
            max_length=config["max_length"],
            seed=config["seed"],
            save_strategy="no",
            logging_steps=1,
            report_to="none",
        ),
    )
    result = trainer.train()
    trainer.save_model(str(Path(config["output_dir"]) / "final"))
    summary = {**result.metrics, "global_step": result.global_step}
    (Path(config["output_dir"]) / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
