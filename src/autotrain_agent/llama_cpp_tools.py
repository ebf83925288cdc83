"""Find llama.cpp's converter and quantizer in a llama.cpp folder, whichever layout its version uses.

Older llama.cpp trees have `convert-hf-to-gguf.py` and a `quantize` binary at the top; newer ones have
`convert_hf_to_gguf.py` and `build/bin/llama-quantize`. Each candidate is run with `--help`, so a tool that is
present but broken fails here, in the preflight, and not at the end of a run.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError

logger = logging.getLogger(__name__)

CONVERTER_NAMES = ("convert_hf_to_gguf.py", "convert-hf-to-gguf.py")
QUANTIZER_NAMES = ("build/bin/llama-quantize", "bin/llama-quantize", "llama-quantize", "build/bin/quantize", "quantize")
_HELP_TIMEOUT_S = 60


@dataclass(frozen=True)
class LlamaCppTools:
    """Paths of llama.cpp's tools in one folder, and the llama.cpp version pinned by llama-cpp-python."""

    converter: Path
    """The HF-to-GGUF converter script."""
    quantizer: Path
    """The quantizer executable."""
    llama_cpp_python_version: str
    """Installed llama-cpp-python version, which pins the vendored llama.cpp; `unknown` when not installed."""


def resolve_llama_cpp_tools(folder: Path) -> LlamaCppTools:
    """Find the converter and the quantizer in `folder` and check that each responds to `--help`.

    Raises:
        ConversionError: If either tool is missing or fails `--help`; the message names the folder and every
            file name tried.
    """
    folder = Path(folder)
    converter = _first_answering(folder, CONVERTER_NAMES, lambda path: [sys.executable, str(path), "--help"])
    quantizer = _first_answering(folder, QUANTIZER_NAMES, lambda path: [str(path), "--help"])
    missing = [
        f"a converter ({', '.join(CONVERTER_NAMES)})" if converter is None else "",
        f"a quantizer ({', '.join(QUANTIZER_NAMES)})" if quantizer is None else "",
    ]
    missing = [item for item in missing if item]
    if missing:
        raise ConversionError(
            f"The llama.cpp folder {str(folder)!r} has no working {' and no working '.join(missing)}; "
            "point `AUTOTRAIN_LLAMA_CPP_DIR` at a built llama.cpp checkout, or unset it to use llama-cpp-python."
        )
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    logger.info("llama.cpp tools in %s: %s, %s (llama-cpp-python %s).", folder, converter.name, quantizer.name, version)
    return LlamaCppTools(converter=converter, quantizer=quantizer, llama_cpp_python_version=version)


def resolve_configured_llama_cpp_tools() -> LlamaCppTools | None:
    """Resolve the tools in `$AUTOTRAIN_LLAMA_CPP_DIR`; `None` when it is unset and llama-cpp-python's are used.

    Raises:
        ConversionError: If the configured folder lacks a working converter or quantizer.
    """
    configured = os.environ.get("AUTOTRAIN_LLAMA_CPP_DIR")
    return resolve_llama_cpp_tools(Path(configured).expanduser()) if configured else None


def _first_answering(folder: Path, names: tuple[str, ...], command_for) -> Path | None:
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        try:
            completed = subprocess.run(command_for(path), capture_output=True, text=True, timeout=_HELP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            logger.warning("%s failed to run with --help: %s", path, err)
            continue
        # llama-quantize prints its usage and exits 1 on --help, so a usage text counts as a response.
        if completed.returncode == 0 or "usage" in (completed.stdout + completed.stderr).lower():
            return path
        logger.warning("%s --help exited with %d", path, completed.returncode)
    return None
