"""Merge a LoRA adapter into an unquantized copy of its base model."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from .errors import ConversionError

logger = logging.getLogger(__name__)


def is_adapter_folder(folder: Path) -> bool:
    """Return whether `folder` holds a PEFT adapter rather than full weights."""
    return (Path(folder) / "adapter_config.json").is_file()


def load_adapter(model, adapter_dir: Path):
    """Return `model` wrapped with the PEFT adapter saved in `adapter_dir`, as `PeftModel.from_pretrained` does.

    peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` while it wraps the model. The warning
    concerns peft's code, not the user's, so it is filtered here and nowhere else.
    """
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return PeftModel.from_pretrained(model, adapter_dir)


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Write base weights plus the merged adapter, the tokenizer and the generation config into `out_dir`.

    The merge runs in float32 on the CPU. An existing `out_dir` is reused, so a resumed experiment does not merge
    twice. The folder appears atomically: it is built beside `out_dir` and renamed.

    Raises:
        ConversionError: If the adapter does not fit the base model.
    """
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    # Imported here: torch and peft take seconds to import, and most commands never merge.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("merging adapter %s into %s", adapter_dir, base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        merged = load_adapter(base, adapter_dir).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as err:
        raise ConversionError(
            f"The adapter {adapter_dir} does not fit the base model {base_dir}: {err}; "
            f"merge it with the base model it was trained on."
        ) from err
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").exists() else base_dir)
    return save_merged_model(merged, tokenizer, out_dir)


def save_merged_model(model, tokenizer, out_dir: Path) -> Path:
    """Save a merged model with its tokenizer, chat template and generation config, and prove the saved copy.

    The input and output embeddings are compared first: when training made them differ, the config is untied
    before saving, or the reload would tie them again and lose the trained head. After saving, the folder is
    loaded from disk and must give the in-memory model's logits (`check_reload_logits`). The folder appears
    atomically: it is built beside `out_dir` and renamed, so a failed check leaves no `out_dir`.

    Raises:
        ConversionError: If the reloaded model's logits differ from the in-memory model's.
    """
    out_dir = Path(out_dir)
    _untie_if_trained_apart(model)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        check_reload_logits(model, staging)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def check_reload_logits(model, saved_dir: Path, *, atol: float = 1e-4) -> float:
    """Load `saved_dir` from disk and compare its logits on a fixed input with the in-memory `model`'s.

    Returns:
        The largest absolute logit difference.

    Raises:
        ConversionError: If the largest difference exceeds `atol`, as when a trained head was saved tied.
    """
    import torch
    from transformers import AutoModelForCausalLM

    vocab_size = model.get_input_embeddings().weight.shape[0]
    input_ids = torch.arange(0, 32).remainder(vocab_size).unsqueeze(0)
    reloaded = AutoModelForCausalLM.from_pretrained(saved_dir, dtype=model.dtype)
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        actual = reloaded(input_ids=input_ids).logits
    difference = float((expected - actual).abs().max()) if expected.shape == actual.shape else float("inf")
    if difference > atol:
        raise ConversionError(
            f"The model saved in {str(saved_dir)!r} gives different logits after reloading (max difference "
            f"{difference:.3g}, tolerance {atol:g}); check `tie_word_embeddings` and the saved tensor names."
        )
    return difference


def _untie_if_trained_apart(model) -> None:
    """Untie the embeddings in the config when training made the input and output matrices differ."""
    input_embeddings = model.get_input_embeddings().weight
    output_layer = model.get_output_embeddings()
    if output_layer is None or output_layer.weight is input_embeddings:
        return
    if output_layer.weight.shape == input_embeddings.shape and not bool((output_layer.weight == input_embeddings).all()):
        logger.warning("input and output embeddings differ after training; saving them untied")
        model.config.tie_word_embeddings = False
