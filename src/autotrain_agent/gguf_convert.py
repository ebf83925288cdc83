"""Convert Hugging Face model folders to GGUF with llama.cpp's own converter, and quantize GGUF files.

The llama-cpp-python wheel does not install `convert_hf_to_gguf.py`, but the source distribution of the same
version vendors it with the `gguf-py` it was written against. The converter is taken from that source distribution
once, cached per llama-cpp-python version, and run as a subprocess so its `gguf-py` never mixes with the
installed `gguf` package.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Literal

from autotrain_agent.errors import (
    ConfigError,
    ConversionError,
    UnsupportedTokenizerError,
)
from autotrain_agent.llama_cpp_log import llama_cpp_log_to

logger = logging.getLogger(__name__)

GgufOutType = Literal["f16", "bf16", "f32", "q8_0"]

_CONVERTER_SCRIPT = "convert_hf_to_gguf.py"

# Parts of the vendored llama.cpp tree that `convert_hf_to_gguf.py` imports, plus the license that covers them.
_CONVERTER_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")

_STDERR_TAIL_LINES = 20
# llama.cpp's summary when a K-quant's 256-value block does not divide some tensors' rows.
_FALLBACK_SUMMARY = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")


def find_llama_cpp_converter(*, cache_dir: Path) -> Path:
    """Find llama.cpp's `convert_hf_to_gguf.py`, extracting it from the llama-cpp-python sources if needed.

    The lookup order is: the folder in `$AUTOTRAIN_LLAMA_CPP_DIR`; `cache_dir/llama.cpp/<llama-cpp-python version>/`;
    then the source distribution of the installed llama-cpp-python version, read from the file in
    `$AUTOTRAIN_LLAMA_CPP_SDIST` or downloaded with `pip download` (about 76 MB for 0.3.36). Only the converter,
    its `conversion` package, `gguf-py` and the license are extracted into the cache.

    Args:
        cache_dir: The autotrain-agent cache, usually `model_source.default_cache_dir()`.

    Returns:
        The folder that contains `convert_hf_to_gguf.py` and `gguf-py/`.

    Raises:
        ConversionError: If `$AUTOTRAIN_LLAMA_CPP_DIR` lacks the converter, llama-cpp-python is not installed, or the
            source distribution cannot be downloaded or lacks the converter.
    """
    configured = os.environ.get("AUTOTRAIN_LLAMA_CPP_DIR")
    if configured:
        folder = Path(configured).expanduser()
        if not _is_converter_folder(folder):
            raise ConversionError(
                f"`AUTOTRAIN_LLAMA_CPP_DIR` is {configured!r}, which lacks {_CONVERTER_SCRIPT} or gguf-py/; "
                "point it at a llama.cpp checkout, or unset it to use the llama-cpp-python sources."
            )
        return folder

    version = _installed_llama_cpp_python_version()
    target = cache_dir / "llama.cpp" / version
    if _is_converter_folder(target):
        logger.debug("Using the cached llama.cpp converter at %s.", target)
        return target

    sdist = os.environ.get("AUTOTRAIN_LLAMA_CPP_SDIST")
    if sdist:
        _extract_converter(Path(sdist).expanduser(), target)
        return target
    with tempfile.TemporaryDirectory(prefix="autotrain-llama-cpp-sdist-") as download_dir:
        archive = _download_sdist(version, Path(download_dir))
        _extract_converter(archive, target)
    return target


def convert_hf_to_gguf(
    model_dir: Path,
    out_file: Path,
    *,
    outtype: GgufOutType = "f16",
    cache_dir: Path,
    vocab_only: bool = False,
) -> Path:
    """Convert a Hugging Face model folder to one GGUF file with llama.cpp's `convert_hf_to_gguf.py`.

    The file is written beside `out_file` under a temporary name and renamed when the converter succeeds, so a
    failed conversion leaves no partial `out_file`.

    Args:
        model_dir: Folder with `config.json`, safetensors weights and tokenizer files. Merge LoRA adapters first.
        out_file: The GGUF file to write; an existing file is replaced.
        outtype: Tensor type for the weights. For K-quants such as Q4_K_M, convert to f16 and call `quantize_gguf`.
        cache_dir: The autotrain-agent cache, where the converter is kept (see `find_llama_cpp_converter`).
        vocab_only: Write only the vocabulary, in seconds. Use it as a preflight that the tokenizer is supported.

    Returns:
        `out_file`.

    Raises:
        ConfigError: If `outtype` is not one of f16, bf16, f32 or q8_0.
        ConversionError: If `model_dir` has no `config.json`, or the converter fails. The message ends with the
            last lines of the converter's stderr.
        UnsupportedTokenizerError: If the converter does not recognise the tokenizer's BPE pre-tokenizer.
    """
    if outtype not in ("f16", "bf16", "f32", "q8_0"):
        raise ConfigError(f"`outtype` must be one of 'f16', 'bf16', 'f32' or 'q8_0', got {outtype!r}.")
    if not (model_dir / "config.json").is_file():
        raise ConversionError(
            f"Model folder {str(model_dir)!r} has no `config.json`; pass a folder saved with `save_pretrained`."
        )
    converter_dir = find_llama_cpp_converter(cache_dir=cache_dir)

    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(f".{out_file.name}.partial")
    command = [sys.executable, str(_converter_script(converter_dir)), str(model_dir)]
    command += ["--outfile", str(partial), "--outtype", outtype]
    if vocab_only:
        command.append("--vocab-only")
    environment = dict(os.environ)
    environment.pop("NO_LOCAL_GGUF", None)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(converter_dir / "gguf-py"), *filter(None, [environment.get("PYTHONPATH")])]
    )
    logger.info("Converting %s to %s GGUF at %s.", model_dir, outtype, out_file)
    started = time.monotonic()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    logger.debug("convert_hf_to_gguf.py stderr:\n%s", completed.stderr)

    if completed.returncode != 0:
        partial.unlink(missing_ok=True)
        raise _describe_converter_failure(model_dir, converter_dir, completed)
    os.replace(partial, out_file)
    logger.info("Converted %s to GGUF in %.1f s.", model_dir, time.monotonic() - started)
    return out_file


def quantize_gguf(src: Path, dst: Path, *, quant_type: str = "Q4_K_M") -> Path:
    """Quantize a GGUF file with llama.cpp's `llama_model_quantize`, as the `llama-quantize` tool does.

    With `$AUTOTRAIN_LLAMA_CPP_DIR` set, that folder's `llama-quantize` (or `quantize`) executable runs instead.

    Tensors whose row size is not a multiple of a K-quant's block (256) fall back to another type inside
    llama.cpp, so a "Q4_K_M" file of a model with hidden size 576 holds mostly Q5_0 and Q8_0 tensors.

    Args:
        src: An F16, BF16 or F32 GGUF file.
        dst: The quantized file to write; an existing file is replaced.
        quant_type: A llama.cpp file type such as Q4_K_M, Q5_K_M, Q8_0 or Q4_0 (case-insensitive).

    Returns:
        `dst`.

    Raises:
        ConfigError: If `quant_type` is not a llama.cpp file type.
        ConversionError: If llama-cpp-python is missing, `src` does not exist, or llama.cpp reports a failure.
    """
    llama_cpp = _import_llama_cpp()
    file_types = {
        name.removeprefix("LLAMA_FTYPE_MOSTLY_"): name
        for name in dir(llama_cpp)
        if name.startswith("LLAMA_FTYPE_MOSTLY_")
    }
    if quant_type.upper() not in file_types:
        raise ConfigError(f"`quant_type` must be one of {', '.join(sorted(file_types))}, got {quant_type!r}.")
    if not src.is_file():
        raise ConversionError(f"GGUF file {str(src)!r} does not exist; run `convert_hf_to_gguf` first.")

    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.partial")
    logger.info("Quantizing %s to %s at %s.", src, quant_type.upper(), dst)
    started = time.monotonic()
    log_path = dst.with_name(f"{dst.stem}.quantize.log")
    configured = os.environ.get("AUTOTRAIN_LLAMA_CPP_DIR")
    if configured:
        status = _run_quantizer_tool(Path(configured).expanduser(), src, partial, quant_type.upper(), log_path)
    else:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, file_types[quant_type.upper()])
        with llama_cpp_log_to(log_path, llama_cpp):
            status = llama_cpp.llama_model_quantize(str(src).encode(), str(partial).encode(), params)
    log_lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.is_file() else []

    if status != 0:
        partial.unlink(missing_ok=True)
        log_tail = _tail("\n".join(log_lines))
        raise ConversionError(
            f"llama.cpp failed to quantize {str(src)!r} to {quant_type!r} (status {status}); the end of its log "
            f"({log_path}): {log_tail}. Check that the source is an F16, BF16 or F32 GGUF."
        )
    os.replace(partial, dst)
    fallback = next(filter(None, map(_FALLBACK_SUMMARY.search, log_lines)), None)
    logger.info("Quantized %s in %.1f s; %s of its tensors needed a fallback type (llama.cpp's log: %s).",
                src, time.monotonic() - started, f"{fallback[1]} of {fallback[2]}" if fallback else "none", log_path)
    return dst


def _run_quantizer_tool(folder: Path, src: Path, partial: Path, quant_type: str, log_path: Path) -> int:
    """Quantize with the `llama-quantize` executable of a configured llama.cpp folder; return its exit status.

    Its output goes to `log_path`.
    """
    from .llama_cpp_tools import resolve_llama_cpp_tools

    quantizer = resolve_llama_cpp_tools(folder).quantizer
    completed = subprocess.run([str(quantizer), str(src), str(partial), quant_type], capture_output=True, text=True,
                               check=False)
    log_path.write_text(completed.stdout + completed.stderr, encoding="utf-8")
    if completed.returncode != 0:
        logger.warning("%s exited with %d: %s", quantizer, completed.returncode, _tail(completed.stderr))
    return completed.returncode


def check_quantizer_available() -> str:
    """Check that llama-cpp-python exposes `llama_model_quantize`, and return its version, which pins llama.cpp.

    Raises:
        ConversionError: If llama-cpp-python is missing or has no `llama_model_quantize`.
    """
    llama_cpp = _import_llama_cpp()
    if not callable(getattr(llama_cpp, "llama_model_quantize", None)):
        raise ConversionError(
            f"llama-cpp-python {_installed_llama_cpp_python_version()} has no `llama_model_quantize`; "
            "install the version this package pins with `pip install 'autotrain-agent[offline]'`."
        )
    return _installed_llama_cpp_python_version()


def _is_converter_folder(folder: Path) -> bool:
    return _converter_script(folder).is_file() and (folder / "gguf-py").is_dir()


def _converter_script(folder: Path) -> Path:
    """Return the converter under its current name, or under the name older llama.cpp trees used."""
    from .llama_cpp_tools import CONVERTER_NAMES

    return next((folder / name for name in CONVERTER_NAMES if (folder / name).is_file()), folder / _CONVERTER_SCRIPT)


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as err:
        raise ConversionError(
            "llama-cpp-python is not installed; run `pip install 'autotrain-agent[offline]'` "
            "(pip builds llama.cpp from source, about 6 minutes on 2 cores)."
        ) from err
    return llama_cpp


def _installed_llama_cpp_python_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError as err:
        raise ConversionError(
            "llama-cpp-python is not installed, so there is no matching llama.cpp converter; run "
            "`pip install 'autotrain-agent[offline]'`, or set `AUTOTRAIN_LLAMA_CPP_DIR` to a llama.cpp checkout."
        ) from err


def _download_sdist(version: str, download_dir: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += [f"llama-cpp-python=={version}", "-d", str(download_dir)]
    logger.info("Downloading the llama-cpp-python %s sources for llama.cpp's converter (about 76 MB).", version)
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(download_dir.glob("llama_cpp_python-*.tar.gz"))
    if completed.returncode != 0 or not archives:
        raise ConversionError(
            f"`pip download` of llama-cpp-python=={version} sources failed: {_tail(completed.stderr)}\n"
            "Download the sdist elsewhere and set `AUTOTRAIN_LLAMA_CPP_SDIST` to its path, or set "
            "`AUTOTRAIN_LLAMA_CPP_DIR` to a llama.cpp checkout."
        )
    logger.info("Downloaded %s in %.1f s.", archives[0].name, time.monotonic() - started)
    return archives[0]


def _extract_converter(archive: Path, target: Path) -> None:
    if not archive.is_file():
        raise ConversionError(
            f"llama-cpp-python source archive {str(archive)!r} does not exist; fix `AUTOTRAIN_LLAMA_CPP_SDIST`."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Extract beside the target and rename, so an interrupted extraction never looks like a cached converter.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            extracted = sum(_extract_member(tar, member, staging) for member in tar.getmembers())
        if not _is_converter_folder(staging):
            raise ConversionError(
                f"Archive {str(archive)!r} has no vendor/llama.cpp/{_CONVERTER_SCRIPT} with gguf-py/; "
                "pass a llama-cpp-python source distribution (.tar.gz)."
            )
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not _is_converter_folder(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Extracted %d llama.cpp converter files from %s into %s.", extracted, archive.name, target)


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path) -> bool:
    # Archive paths look like llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py/gguf/__init__.py.
    parts = PurePosixPath(member.name).parts
    if not member.isfile() or len(parts) < 4 or parts[1:3] != ("vendor", "llama.cpp") or ".." in parts:
        return False
    relative = "/".join(parts[3:])
    if not any(
        relative == wanted or (wanted.endswith("/") and relative.startswith(wanted)) for wanted in _CONVERTER_MEMBERS
    ):
        return False
    destination = staging.joinpath(*parts[3:])
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with source, destination.open("wb") as stream:
        shutil.copyfileobj(source, stream)
    return True


def _describe_converter_failure(
    model_dir: Path, converter_dir: Path, completed: subprocess.CompletedProcess
) -> ConversionError:
    tail = _tail(completed.stderr)
    if "BPE pre-tokenizer was not recognized" in completed.stderr:
        match = re.search(r"chkhsh:\s*([0-9a-f]{64})", completed.stderr)
        checksum = match.group(1) if match else "unknown"
        return UnsupportedTokenizerError(
            f"The tokenizer of {str(model_dir)!r} is not supported by llama.cpp's converter in {str(converter_dir)!r}: "
            f"its BPE pre-tokenizer (chkhsh {checksum}) is unknown to that version. Use a base model whose tokenizer "
            "llama.cpp supports, or a newer llama-cpp-python.\n"
            f"Converter stderr (last lines):\n{tail}"
        )
    return ConversionError(
        f"llama.cpp's {_CONVERTER_SCRIPT} failed on {str(model_dir)!r} with exit code {completed.returncode}. "
        f"Check the architecture and files it names below.\nConverter stderr (last lines):\n{tail}"
    )


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_STDERR_TAIL_LINES:])
