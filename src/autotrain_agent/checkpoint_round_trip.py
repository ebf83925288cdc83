"""Save and reload the model through the checkpoint code path before launch.

A save error then shows before anything is submitted, not at the first `save_steps` checkpoint of a paid run.

`tools/train.py` saves checkpoints with the trainer, which calls `save_pretrained` and writes safetensors.
safetensors rejects tensors that share memory unless the model declares them as tied, so a model whose weights
share storage fails at its first save; here it fails before anything is submitted.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from .errors import CheckpointSaveError

logger = logging.getLogger(__name__)

# NOTE: larger models are skipped because loading them in fp32 on the agent's machine takes long. The quick test
# run of a paid plan still saves a checkpoint on the job's hardware. 1.5 GB of safetensors is about 0.7B bf16
# parameters.
MAX_CHECKED_WEIGHTS_BYTES = 1_500_000_000
PROBE_TOKEN_IDS = [[1, 2, 3, 4, 5, 6, 7, 8]]
PASSED_FILE = "passed.json"


def check_checkpoint_round_trip(model, folder: Path) -> None:
    """Save `model` to `folder` as a checkpoint is saved, reload it, and compare the logits on a fixed input.

    The saved weights are deleted afterwards; `folder` keeps no model files.

    Raises:
        CheckpointSaveError: If the save or the reload raises, or the reloaded logits differ from the originals.
    """
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    checkpoint = folder / "checkpoint"
    model.eval()
    probe = torch.tensor(PROBE_TOKEN_IDS) % model.config.vocab_size
    try:
        with torch.no_grad():
            expected = model(probe).logits
        try:
            model.save_pretrained(checkpoint)
        except Exception as err:  # noqa: BLE001 - any save error must block the launch, with its message
            raise CheckpointSaveError(
                f"Saving the model as a checkpoint failed before launch, so the run would fail at its first save: "
                f"{type(err).__name__}: {_first_line(err)} Untie or clone the weights that share memory, or declare "
                f"them in the model's tied weights."
            ) from err
        try:
            reloaded = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=model.dtype)
            with torch.no_grad():
                actual = reloaded(probe).logits
        except Exception as err:  # noqa: BLE001 - a checkpoint that cannot be reloaded is as broken as no checkpoint
            raise CheckpointSaveError(f"Reloading the checkpoint saved before launch failed: {type(err).__name__}: {_first_line(err)}") from err
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    if not torch.equal(expected, actual):
        difference = (expected - actual).abs().max().item()
        raise CheckpointSaveError(
            f"The checkpoint saved before launch reloads with different logits (max difference {difference:.3g}); "
            f"check the model's tied weights before training."
        )


def check_model_folder_round_trip(model_path: str | Path, folder: Path, *, experiment_id: str) -> bool:
    """Load a local model folder and run `check_checkpoint_round_trip` on it, once per model folder.

    Returns:
        Whether the round trip ran; `False` when it passed before for this model folder, when `model_path` is no
        local folder with safetensors weights, or when the weights are over `MAX_CHECKED_WEIGHTS_BYTES`.

    Raises:
        CheckpointSaveError: If the round trip fails.
    """
    model_dir = Path(model_path).expanduser()
    weights = sorted(model_dir.glob("*.safetensors")) if model_dir.is_dir() else []
    passed_file = Path(folder) / PASSED_FILE
    if not weights or _passed_before(passed_file, model_dir):
        return False
    weights_bytes = sum(path.stat().st_size for path in weights)
    if weights_bytes > MAX_CHECKED_WEIGHTS_BYTES:
        logger.info("%s: checkpoint round trip skipped: %d bytes of weights in %s", experiment_id, weights_bytes, model_dir)
        return False

    check_checkpoint_round_trip(load_model(model_dir), folder)
    passed_file.parent.mkdir(parents=True, exist_ok=True)
    passed_file.write_text(json.dumps({"model_path": str(model_dir.resolve())}), encoding="utf-8")
    logger.info("%s: checkpoint round trip passed for %s", experiment_id, model_dir)
    return True


def load_model(model_dir: Path):
    """Return the model of a local folder in fp32, as `tools/train.py` loads it on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)


def _passed_before(passed_file: Path, model_dir: Path) -> bool:
    try:
        return json.loads(passed_file.read_text(encoding="utf-8")).get("model_path") == str(model_dir.resolve())
    except (OSError, ValueError):
        return False


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else ""
