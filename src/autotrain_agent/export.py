"""Export a fine-tuned model: merge, preflight, convert to F16 GGUF, quantize, and verify every file.

Nothing is quantized before the F16 file passes verification, and `export_model` raises on any difference, so a
file that fails is never quantized or published.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ConversionError
from .gguf_convert import convert_hf_to_gguf, quantize_gguf
from .gguf_verify import read_tensor_stats, verify_gguf_file
from .state import ExportRecord, GgufFile

logger = logging.getLogger(__name__)

DEFAULT_QUANT_TYPES = ("Q4_K_M",)

# Modules whose weights an adapter GGUF (llama.cpp's LoRA format) cannot carry. An adapter that trains one of them
# is merged in transformers, and the merged model is converted.
_ADAPTER_GGUF_UNSUPPORTED_MODULES = ("lm_head", "embed_tokens", "wte", "embed_out", "output")

_QUANTIZATION_STATE_MARKERS = (".SCB", "absmax", "quant_map", "quant_state", ".weight_format", "nested_quant")
_INTEGER_DTYPES = {"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64"}


@dataclass(frozen=True)
class ExportPlan:
    """The route from an adapter to GGUF, with the reason for it."""

    kind: Literal["adapter_gguf", "merge"]
    """`adapter_gguf`: the adapter alone may be converted; `merge`: merge in transformers, then convert."""
    reason: str
    """Why, naming the module when a merge is required."""


def plan_export(adapter_dir: Path) -> ExportPlan:
    """Choose between an adapter-only GGUF and a merge, from the adapter's `adapter_config.json`.

    An adapter GGUF cannot hold a trained head or embedding (`lm_head` in `target_modules`, or any entry of
    `modules_to_save`), so such adapters are merged first rather than converted with tensors left out.
    """
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        targets = [targets]
    saved = config.get("modules_to_save") or []
    if saved:
        return ExportPlan("merge", f"`modules_to_save` contains {saved[0]!r}, which an adapter GGUF cannot carry")
    for module in targets:
        if module.split(".")[-1] in _ADAPTER_GGUF_UNSUPPORTED_MODULES:
            return ExportPlan("merge", f"`target_modules` contains {module!r}, which an adapter GGUF cannot carry")
    return ExportPlan("adapter_gguf", f"the adapter only trains {', '.join(map(str, targets)) or 'no module'}")


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """Return the tensor entries (dtype, shape, offsets) of a safetensors file without reading its data."""
    with open(path, "rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
    header.pop("__metadata__", None)
    return header


def check_weights_before_conversion(model_dir: Path) -> None:
    """Reject weights that still hold quantization state, and a tokenizer, embedding and config that disagree.

    Only the safetensors headers are read, so this takes milliseconds.

    Raises:
        ConversionError: Naming every integer weight and quantization-state tensor, or the sizes that disagree.
    """
    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{str(model_dir)!r} has no safetensors weights; save the model with `save_pretrained`.")
    headers = {name: entry for path in files for name, entry in read_safetensors_header(path).items()}

    rejected = []
    for name, entry in headers.items():
        if any(marker in name for marker in _QUANTIZATION_STATE_MARKERS):
            rejected.append(f"{name} (quantization state)")
        elif entry["dtype"] in _INTEGER_DTYPES:
            rejected.append(f"{name} (integer weight, {entry['dtype']})")
    if rejected:
        raise ConversionError(
            f"The weights in {str(model_dir)!r} still hold quantization state: {', '.join(rejected)}. "
            "Merge the adapter onto an unquantized (bf16, fp16 or fp32) base model and export again."
        )
    _check_vocabulary_sizes(model_dir, headers)


def _check_vocabulary_sizes(model_dir: Path, headers: dict[str, dict]) -> None:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text())
    config_vocab = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    embedding_rows = next((entry["shape"][0] for name, entry in headers.items() if name.endswith("embed_tokens.weight")), None)

    tokenizer_size = _tokenizer_size(model_dir)
    problems = []
    if embedding_rows is not None and config_vocab is not None and embedding_rows != config_vocab:
        problems.append(f"the embedding has {embedding_rows} rows but `vocab_size` in config.json is {config_vocab}")
    if embedding_rows is not None and tokenizer_size > embedding_rows:
        problems.append(f"the tokenizer has {tokenizer_size} tokens but the embedding only {embedding_rows} rows")
    if problems:
        raise ConversionError(
            f"Sizes in {str(model_dir)!r} disagree: {'; '.join(problems)}. Call `resize_token_embeddings` after "
            "adding tokens and save the model and tokenizer together."
        )


def _tokenizer_size(model_dir: Path) -> int:
    # `tokenizers` reads tokenizer.json in milliseconds; importing transformers takes seconds on a small CPU.
    if (model_dir / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(model_dir / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(model_dir))


def export_model(
    model_dir: Path,
    out_dir: Path,
    *,
    name: str,
    cache_dir: Path,
    quant_types: tuple[str, ...] = DEFAULT_QUANT_TYPES,
) -> ExportRecord:
    """Convert a merged Hugging Face folder to F16 GGUF, verify it, then quantize and verify each quant type.

    Args:
        model_dir: Full weights (merge LoRA adapters first with `merge.merge_adapter`).
        out_dir: Folder for `<name>-f16.gguf` and `<name>-<quant>.gguf`.
        name: File name prefix.
        cache_dir: The autotrain-agent cache that contains llama.cpp's converter.
        quant_types: llama.cpp file types to produce from the F16 file, such as Q4_K_M and Q8_0.

    Raises:
        ConversionError: If the preflight rejects the weights, a tool fails, or any file differs from
            transformers (token probes or F16 greedy tokens). Files already written stay on disk.
    """
    check_weights_before_conversion(model_dir)
    started = time.monotonic()

    f16_path = convert_hf_to_gguf(model_dir, out_dir / f"{name}-f16.gguf", outtype="f16", cache_dir=cache_dir)
    files = [_verified_file(f16_path, model_dir, quant_type="F16", compare_greedy=True)]
    for quant_type in quant_types:
        quantized = quantize_gguf(f16_path, out_dir / f"{name}-{quant_type.lower()}.gguf", quant_type=quant_type)
        files.append(_verified_file(quantized, model_dir, quant_type=quant_type.upper(), compare_greedy=False))

    record = ExportRecord(merged_dir=str(model_dir), files=files, duration_s=round(time.monotonic() - started, 1))
    logger.info("Exported %s to %d GGUF files in %.1f s.", model_dir, len(files), record.duration_s)
    return record


def _verified_file(path: Path, model_dir: Path, *, quant_type: str, compare_greedy: bool) -> GgufFile:
    verification = verify_gguf_file(path, model_dir, compare_greedy=compare_greedy)
    if verification.problems:
        raise ConversionError(
            f"{str(path)!r} does not match the transformers model in {str(model_dir)!r}: "
            + "; ".join(verification.problems)
            + ". The file is not quantized or published; check the tokenizer files the converter read."
        )
    stats = read_tensor_stats(path, quant_type=quant_type)
    if stats.fallback_tensors:
        logger.warning(
            "%s: %d tensors fell back from %s to other types (%s); bits per weight %.2f.",
            path.name, stats.fallback_tensors, quant_type, stats.tensor_types, stats.bits_per_weight,
        )
    return GgufFile(
        path=str(path),
        quant_type=quant_type,
        size_bytes=path.stat().st_size,
        bits_per_weight=stats.bits_per_weight,
        tensor_types=stats.tensor_types,
        fallback_tensors=stats.fallback_tensors,
        probes_match=verification.probes_match,
        greedy_match=verification.greedy_match,
        sample=verification.sample,
    )
