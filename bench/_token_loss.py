"""Measure a trained LoRA adapter's loss per completion token over a JSONL file of `messages` rows.

    python bench/_token_loss.py --model MODEL_DIR --adapter ADAPTER_DIR --dataset rows.jsonl

Prints one JSON object: `loss_per_token` (mean cross-entropy over every completion token of every row),
`completion_tokens` and `real_tokens` (every token of every row, prompt included, no padding). Rows are tokenized as
TRL 1.16 tokenizes conversational prompt-completion rows: the prompt with the generation prompt appended, and the
completion starting where the two token lists diverge. One row per forward pass, so no padding enters the loss.
"""

import argparse
import json
from pathlib import Path


def tokenize_row(tokenizer, messages: list[dict]) -> tuple[list[int], int]:
    """Return a row's token ids and the length of its prompt part."""
    prompt_ids = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full_ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    prompt_len = 0
    while prompt_len < min(len(prompt_ids), len(full_ids)) and prompt_ids[prompt_len] == full_ids[prompt_len]:
        prompt_len += 1
    return list(full_ids), prompt_len


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="base model folder")
    parser.add_argument("--adapter", required=True, help="folder of the trained LoRA adapter")
    parser.add_argument("--dataset", required=True, type=Path, help="JSONL file with a `messages` column")
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32), args.adapter)
    model.eval()
    rows = [json.loads(line) for line in args.dataset.read_text().splitlines() if line.strip()]

    loss_sum, completion_tokens, real_tokens = 0.0, 0, 0
    with torch.no_grad():
        for row in rows:
            ids, prompt_len = tokenize_row(tokenizer, row["messages"])
            input_ids = torch.tensor([ids])
            labels = input_ids.clone()
            labels[0, :prompt_len] = -100
            logits = model(input_ids=input_ids).logits[:, :-1].float()
            targets = labels[:, 1:]
            loss_sum += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
            ).item()
            completion_tokens += int((targets != -100).sum())
            real_tokens += len(ids)
    print(json.dumps({
        "loss_per_token": loss_sum / completion_tokens,
        "completion_tokens": completion_tokens,
        "real_tokens": real_tokens,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
