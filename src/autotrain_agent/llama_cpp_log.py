"""Send llama.cpp's in-process log to a file instead of the console.

Quantizing writes one line per tensor to stderr, hundreds for a small model, which buries the progress and results
the command line prints. The file keeps every line, and the caller logs a one-line summary.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()


@contextlib.contextmanager
def llama_cpp_log_to(path: Path, llama_cpp):
    """Collect llama.cpp's log lines while the block runs, then write them to `path`.

    `llama_cpp` is the imported llama-cpp-python module. Its own log callback, which prints to stderr, is set again
    when the block ends. Blocks in different threads run one at a time, because the callback is process-wide.
    """
    from llama_cpp import _logger as default_logging

    parts: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        parts.append(text.decode("utf-8", errors="replace"))

    with _LOCK:
        llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
        try:
            yield
        finally:
            llama_cpp.llama_log_set(default_logging.llama_log_callback, ctypes.c_void_p(0))
            try:
                path.write_text("".join(parts), encoding="utf-8")
            except OSError as err:
                logger.warning("Could not write llama.cpp's log to %s: %s", path, err)
