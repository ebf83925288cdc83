# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "autotrain-agent>=0.1",
# ]
# ///
"""Score one model, checkpoint or LoRA adapter on HumanEval as a job, and write the result beside it.

A backend runs this script for the `evaluate_model` tool of autotrain-agent, so evaluation can run where the model
is, such as a GPU job. Unlike `tools/train.py`, this script imports autotrain_agent: the sandbox, the calibration
on canonical solutions, the code extraction and the adapter check are the harness, and a second copy would drift
and make job scores incomparable with local ones. The package is its only declared dependency; add
`llama-cpp-python` for the llama.cpp engine.

    python tools/evaluate.py --config eval_config.json

The JSON config holds: label (names the output files), model_path (a Hugging Face folder with full weights, or a
LoRA adapter folder), base_model_path (required for an adapter; also checked against for full fine-tunes when
given), engine ("llama.cpp" or "transformers"; default "transformers"), limit (first N problems; null for all 164),
max_new_tokens (default 384), samples (default 1), sampling ({temperature, top_p, seed} or null for greedy),
output_dir and cache_dir (default: the autotrain-agent cache).

Files written under output_dir:
    status.json                {label, state, started_at, finished_at, error}, rewritten at each state change.
    <label>-humaneval.jsonl    one line per sample: completion, extracted program, outcome, detail.
    <label>-humaneval.json     the score: pass@k values, standard errors, counts, engine, harness.

Exit status: 0 when a score was written, 1 when evaluation failed, 2 for an invalid config.
"""

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("evaluate")

REQUIRED_KEYS = ("label", "model_path", "output_dir")


class EvalConfigError(ValueError):
    """The evaluation config is unreadable or contains an invalid value."""


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation described by `--config` and return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="path of the evaluation config (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        config = load_eval_config(args.config)
    except EvalConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    output_dir = Path(config["output_dir"])
    status = {"label": config["label"], "state": "running", "started_at": _now_iso(), "finished_at": None,
              "error": None}
    _write_json(output_dir / "status.json", status)
    try:
        summary = evaluate(config)
    except Exception as err:  # noqa: BLE001 - every failure must reach status.json before the process exits.
        logger.exception("evaluation of %s failed", config["label"])
        status.update(state="failed", finished_at=_now_iso(), error=f"{type(err).__name__}: {err}")
        _write_json(output_dir / "status.json", status)
        return 1

    _write_json(output_dir / f"{config['label']}-humaneval.json", summary)
    status.update(state="succeeded", finished_at=_now_iso())
    _write_json(output_dir / "status.json", status)
    return 0


def load_eval_config(path: Path) -> dict:
    """Read the JSON config, fill defaults and check values.

    Raises:
        EvalConfigError: If the file is unreadable, a required key is missing or a value is invalid.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EvalConfigError(f"cannot read evaluation config {str(path)!r}: {err}") from err
    if not isinstance(raw, dict):
        raise EvalConfigError(f"evaluation config {str(path)!r} must hold a JSON object, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if raw.get(key) in (None, "")]
    if missing:
        raise EvalConfigError(f"evaluation config is missing {', '.join(missing)}: add them to {str(path)!r}")

    config = {"engine": "transformers", "limit": None, "max_new_tokens": 384, "samples": 1, "sampling": None,
              "base_model_path": None, "cache_dir": None, **raw}
    if config["engine"] not in ("llama.cpp", "transformers"):
        raise EvalConfigError(f"`engine` must be 'llama.cpp' or 'transformers', got {config['engine']!r}")
    if config["limit"] is not None and (not isinstance(config["limit"], int) or config["limit"] < 1):
        raise EvalConfigError(f"`limit` must be a positive integer or null, got {config['limit']!r}")
    if not Path(config["model_path"]).is_dir():
        raise EvalConfigError(f"`model_path` {config['model_path']!r} is not a folder")
    if (Path(config["model_path"]) / "adapter_config.json").is_file() and not config["base_model_path"]:
        raise EvalConfigError(f"`model_path` {config['model_path']!r} is a LoRA adapter; set `base_model_path`")
    return config


def evaluate(config: dict) -> dict:
    """Score the configured model and return the summary written to `<label>-humaneval.json`."""
    from autotrain_agent.config import default_cache_dir
    from autotrain_agent.evaluation.generation import Sampling
    from autotrain_agent.evaluation.scoring import ModelUnderTest, prepare_adapter, score_humaneval
    from autotrain_agent.merge import is_adapter_folder

    output_dir = Path(config["output_dir"])
    model_path = Path(config["model_path"])
    base_dir = Path(config["base_model_path"]) if config["base_model_path"] else None
    if is_adapter_folder(model_path):
        model = prepare_adapter(model_path, base_dir, engine=config["engine"],
                                merged_dir=output_dir / f"merged-{config['label']}", label=config["label"])
    else:
        model = ModelUnderTest(label=config["label"], model_dir=model_path, base_dir=base_dir)
    sampling = Sampling(**config["sampling"]) if config["sampling"] else None

    result = score_humaneval(
        model,
        engine=config["engine"],
        limit=config["limit"],
        output_dir=output_dir,
        cache_dir=Path(config["cache_dir"]) if config["cache_dir"] else default_cache_dir(),
        max_new_tokens=config["max_new_tokens"],
        samples=config["samples"],
        sampling=sampling,
        progress=False,
    )
    return {
        **result.model_dump(mode="json", exclude={"results"}),
        "details_path": str(output_dir / f"{config['label']}-humaneval.jsonl"),
    }


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
