"""Time our GGUF export of a merged model beside llama.cpp's converter and quantizer run directly on the same files.

    python bench/export_vs_llama_cpp.py                       # a tiny Llama (hidden 256) with SmolLM2's tokenizer
    python bench/export_vs_llama_cpp.py --model-dir MERGED    # a merged Hugging Face folder, e.g. run-1/merged

Each repeat runs both paths, alternating which goes first:
- ours: `check_weights_before_conversion`, `convert_hf_to_gguf` (F16) and `quantize_gguf`, as `export_model` calls them;
- llama.cpp: `convert_hf_to_gguf.py --outtype f16` in a subprocess, then `llama_model_quantize` from llama-cpp-python.
The goal is ours at most 1.1 times llama.cpp's median. The full `export_model` (with loading every file in
llama.cpp and comparing it with transformers) is timed once and reported beside them, outside the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TITLE = "# Benchmarks\n\nMeasured records, newest last. Each names its script, machine and inputs.\n"


def build_tiny_model(folder: Path) -> Path:
    """Save a Llama with random weights (hidden 256, 2 layers) and the real SmolLM2 tokenizer into `folder`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from autotrain_agent.model_source import default_cache_dir, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=default_cache_dir()).path)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, num_hidden_layers=2, intermediate_size=512, num_attention_heads=4,
        num_key_value_heads=4, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def time_ours(model_dir: Path, out_dir: Path, quant_type: str, cache_dir: Path) -> tuple[float, float]:
    """Return the seconds of our whole path and of its preflight alone."""
    from autotrain_agent.export import check_weights_before_conversion
    from autotrain_agent.gguf_convert import convert_hf_to_gguf, quantize_gguf

    started = time.perf_counter()
    check_weights_before_conversion(model_dir)
    preflight_s = time.perf_counter() - started
    f16 = convert_hf_to_gguf(model_dir, out_dir / "ours-f16.gguf", outtype="f16", cache_dir=cache_dir)
    quantize_gguf(f16, out_dir / "ours-q.gguf", quant_type=quant_type)
    return time.perf_counter() - started, preflight_s


def time_llama_cpp(model_dir: Path, out_dir: Path, quant_type: str, converter_dir: Path) -> float:
    import llama_cpp

    environment = {**os.environ, "PYTHONPATH": str(converter_dir / "gguf-py")}
    f16 = out_dir / "direct-f16.gguf"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(converter_dir / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(f16), "--outtype", "f16"],
        env=environment, check=True, capture_output=True,
    )
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant_type}")
    status = llama_cpp.llama_model_quantize(str(f16).encode(), str(out_dir / "direct-q.gguf").encode(), params)
    if status != 0:
        raise SystemExit(f"llama_model_quantize failed with status {status}")
    return time.perf_counter() - started


def time_full_export(model_dir: Path, out_dir: Path, quant_type: str, cache_dir: Path) -> float:
    from autotrain_agent.export import export_model

    started = time.perf_counter()
    export_model(model_dir, out_dir / "full", name="bench", cache_dir=cache_dir, quant_types=(quant_type,))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="merged Hugging Face folder (default: build the tiny Llama)")
    parser.add_argument("--quant", default="Q4_K_M", help="llama.cpp file type (default Q4_K_M)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each path (default 3)")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="page to append the record to")
    args = parser.parse_args()

    from autotrain_agent.gguf_convert import find_llama_cpp_converter
    from autotrain_agent.model_source import default_cache_dir

    cache_dir = default_cache_dir()
    converter_dir = find_llama_cpp_converter(cache_dir=cache_dir)
    quant_type = args.quant.upper()
    with tempfile.TemporaryDirectory(prefix="autotrain-export-bench-") as scratch:
        scratch_dir = Path(scratch)
        model_dir = args.model_dir or build_tiny_model(scratch_dir / "tiny-llama")
        ours, preflight, direct = [], [], []

        def run_ours() -> None:
            total_s, preflight_s = time_ours(model_dir, scratch_dir, quant_type, cache_dir)
            ours.append(total_s)
            preflight.append(preflight_s)

        def run_direct() -> None:
            direct.append(time_llama_cpp(model_dir, scratch_dir, quant_type, converter_dir))

        for repeat in range(args.repeats):
            for step in (run_ours, run_direct) if repeat % 2 == 0 else (run_direct, run_ours):
                step()
        full_s = time_full_export(model_dir, scratch_dir, quant_type, cache_dir)

    ratio = statistics.median(ours) / statistics.median(direct)
    text = "\n".join([
        f"### GGUF export vs llama.cpp run directly ({dt.date.today().isoformat()})",
        "",
        (
            f"Script: `bench/export_vs_llama_cpp.py`. Machine: {platform.machine()}, {os.cpu_count()} cores (shared), "
            f"Python {platform.python_version()}. Model: `{args.model_dir or 'tiny Llama, hidden 256, SmolLM2 tokenizer'}`; "
            f"F16 then {quant_type}; {args.repeats} repeats, alternating order."
        ),
        "",
        "| Path | Median s | All s |",
        "|---|---|---|",
        f"| ours (preflight, convert, quantize) | {statistics.median(ours):.2f} | {', '.join(f'{s:.2f}' for s in ours)} |",
        f"| ours: preflight alone | {statistics.median(preflight):.2f} | {', '.join(f'{s:.2f}' for s in preflight)} |",
        f"| llama.cpp directly (convert, quantize) | {statistics.median(direct):.2f} | {', '.join(f'{s:.2f}' for s in direct)} |",
        f"| ours, full export with verification | {full_s:.2f} | once |",
        "",
        f"Ratio ours / llama.cpp: {ratio:.2f} (goal at most 1.10: {'met' if ratio <= 1.1 else 'missed'}).",
        "",
    ])
    print(text)
    if not args.output.exists():
        args.output.write_text(TITLE, encoding="utf-8")
    with open(args.output, "a", encoding="utf-8") as page:
        page.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
