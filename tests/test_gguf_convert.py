"""Tests for the llama.cpp converter lookup, HF-to-GGUF conversion and GGUF quantization."""

import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from autotrain_agent.errors import (
    ConfigError,
    ConversionError,
    UnsupportedTokenizerError,
)
from autotrain_agent.gguf_convert import (
    convert_hf_to_gguf,
    find_llama_cpp_converter,
    quantize_gguf,
)
from autotrain_agent.model_source import verify_tokenizer_matches_gguf

SDIST_ROOT = "llama_cpp_python-0.3.36/vendor/llama.cpp"


def write_stub_converter(folder: Path, body: str) -> Path:
    """Write a fake llama.cpp folder whose converter runs `body` as Python."""
    (folder / "gguf-py").mkdir(parents=True)
    (folder / "convert_hf_to_gguf.py").write_text(body)
    return folder


def write_model_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    return folder


def write_fake_sdist(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            payload = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_converter_dir_from_environment(tmp_path, monkeypatch):
    folder = write_stub_converter(tmp_path / "llama.cpp", "")
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(folder))

    assert find_llama_cpp_converter(cache_dir=tmp_path / "cache") == folder


def test_converter_dir_without_script_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(tmp_path))

    with pytest.raises(ConversionError, match="AUTOTRAIN_LLAMA_CPP_DIR"):
        find_llama_cpp_converter(cache_dir=tmp_path / "cache")


def test_sdist_extraction_keeps_converter_files_only(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    archive = write_fake_sdist(
        tmp_path / "llama_cpp_python-0.3.36.tar.gz",
        {
            f"{SDIST_ROOT}/convert_hf_to_gguf.py": "print('converter')",
            f"{SDIST_ROOT}/conversion/__init__.py": "",
            f"{SDIST_ROOT}/gguf-py/gguf/__init__.py": "",
            f"{SDIST_ROOT}/LICENSE": "MIT",
            f"{SDIST_ROOT}/ggml/src/ggml.c": "int main;",
            f"{SDIST_ROOT}/convert_lora_to_gguf.py": "",
            f"{SDIST_ROOT}/gguf-py/../../../escape.py": "",
        },
    )
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_SDIST", str(archive))

    folder = find_llama_cpp_converter(cache_dir=tmp_path / "cache")

    files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert files == ["LICENSE", "conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert not (tmp_path / "escape.py").exists()
    assert [path.name for path in folder.parent.iterdir()] == [folder.name]


def test_sdist_without_converter_is_rejected(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    archive = write_fake_sdist(tmp_path / "other.tar.gz", {"other-1.0/setup.py": ""})
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_SDIST", str(archive))

    with pytest.raises(ConversionError, match="has no vendor/llama.cpp"):
        find_llama_cpp_converter(cache_dir=tmp_path / "cache")

    assert list((tmp_path / "cache" / "llama.cpp").iterdir()) == []


def test_unknown_pre_tokenizer_is_classified(tmp_path, monkeypatch):
    checksum = "ab" * 32
    stub = f"""
import sys
print("WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!", file=sys.stderr)
print("WARNING:hf-to-gguf:** chkhsh:  {checksum}", file=sys.stderr)
raise NotImplementedError("BPE pre-tokenizer was not recognized - update get_vocab_base_pre()")
"""
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(write_stub_converter(tmp_path / "llama.cpp", stub)))
    model_dir = write_model_config(tmp_path / "model")

    with pytest.raises(UnsupportedTokenizerError, match="not supported by llama.cpp's converter") as caught:
        convert_hf_to_gguf(model_dir, tmp_path / "out.gguf", cache_dir=tmp_path)

    assert checksum in str(caught.value)
    assert not (tmp_path / "out.gguf").exists()


def test_converter_failure_shows_stderr_tail(tmp_path, monkeypatch):
    stub = "import sys\nprint('Architecture FooForCausalLM not supported!', file=sys.stderr)\nsys.exit(3)\n"
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(write_stub_converter(tmp_path / "llama.cpp", stub)))
    model_dir = write_model_config(tmp_path / "model")

    with pytest.raises(ConversionError, match="exit code 3") as caught:
        convert_hf_to_gguf(model_dir, tmp_path / "out.gguf", cache_dir=tmp_path)

    assert "FooForCausalLM" in str(caught.value)
    assert not isinstance(caught.value, UnsupportedTokenizerError)


def test_converter_gets_arguments_and_gguf_py(tmp_path, monkeypatch):
    stub = """
import os, sys
arguments = sys.argv[1:]
out = arguments[arguments.index("--outfile") + 1]
with open(out, "w") as stream:
    stream.write(" ".join(arguments[2:]) + "|" + os.environ["PYTHONPATH"].split(os.pathsep)[0])
"""
    converter_dir = write_stub_converter(tmp_path / "llama.cpp", stub)
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(converter_dir))
    model_dir = write_model_config(tmp_path / "model")

    out_file = convert_hf_to_gguf(
        model_dir, tmp_path / "out" / "m.gguf", outtype="q8_0", cache_dir=tmp_path, vocab_only=True
    )

    written_arguments, python_path = out_file.read_text().split("|")
    assert out_file == tmp_path / "out" / "m.gguf"
    assert "--outtype q8_0" in written_arguments
    assert "--vocab-only" in written_arguments
    assert python_path == str(converter_dir / "gguf-py")
    assert [path.name for path in out_file.parent.iterdir()] == ["m.gguf"]


def test_invalid_outtype_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="outtype"):
        convert_hf_to_gguf(tmp_path, tmp_path / "out.gguf", outtype="q4_k_m", cache_dir=tmp_path)


def test_model_dir_without_config_is_rejected(tmp_path):
    with pytest.raises(ConversionError, match="config.json"):
        convert_hf_to_gguf(tmp_path, tmp_path / "out.gguf", cache_dir=tmp_path)


def test_invalid_quant_type_is_rejected(tmp_path):
    pytest.importorskip("llama_cpp")

    with pytest.raises(ConfigError, match="Q4_K_M"):
        quantize_gguf(tmp_path / "in.gguf", tmp_path / "out.gguf", quant_type="Q3_XYZ")


def test_quantize_missing_source_is_rejected(tmp_path):
    pytest.importorskip("llama_cpp")

    with pytest.raises(ConversionError, match="does not exist"):
        quantize_gguf(tmp_path / "in.gguf", tmp_path / "out.gguf")


@pytest.mark.slow
def test_tiny_model_converts_and_quantizes(tiny_llama_dir, converter_cache, tmp_path, capfd):
    import gguf
    from llama_cpp import Llama

    started = time.monotonic()
    f16 = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "tiny-f16.gguf", cache_dir=converter_cache)
    converted_s = time.monotonic() - started
    capfd.readouterr()
    q4 = quantize_gguf(f16, tmp_path / "tiny-q4_k_m.gguf", quant_type="q4_k_m")
    console = capfd.readouterr()
    print(f"tiny convert {converted_s:.1f} s, quantize {time.monotonic() - started - converted_s:.1f} s")

    assert "llama_model_loader" not in console.err + console.out
    assert "llama_model_loader" in (tmp_path / "tiny-q4_k_m.quantize.log").read_text()

    tensor_types = {tensor.tensor_type.name for tensor in gguf.GGUFReader(q4).tensors}
    assert "Q4_K" in tensor_types
    assert q4.stat().st_size < f16.stat().st_size / 2
    llama = Llama(model_path=str(q4), n_ctx=256, verbose=False)
    try:
        completion = llama.create_completion("def add(a, b):", max_tokens=4, temperature=0.0)
    finally:
        llama.close()
    assert completion["usage"]["completion_tokens"] > 0


@pytest.mark.slow
def test_tiny_f16_tokenizes_like_transformers(tiny_llama_dir, converter_cache, tmp_path):
    f16 = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "tiny-f16.gguf", cache_dir=converter_cache)

    assert verify_tokenizer_matches_gguf(
        tiny_llama_dir, f16, probes=("café naïve", "😀", "1234567", "    x = 1", "don't it's")
    )


@pytest.mark.slow
def test_vocab_only_preflight_rejects_edited_pre_tokenizer(tiny_llama_dir, converter_cache, tmp_path):
    edited = shutil.copytree(tiny_llama_dir, tmp_path / "edited")
    tokenizer_json = json.loads((edited / "tokenizer.json").read_text())
    # Without the GPT-2 regex, words are no longer split before BPE, which changes the converter's checksum.
    tokenizer_json["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = False
    (edited / "tokenizer.json").write_text(json.dumps(tokenizer_json))

    supported = convert_hf_to_gguf(tiny_llama_dir, tmp_path / "vocab.gguf", cache_dir=converter_cache, vocab_only=True)
    with pytest.raises(UnsupportedTokenizerError, match="chkhsh [0-9a-f]{64}"):
        convert_hf_to_gguf(edited, tmp_path / "edited.gguf", cache_dir=converter_cache, vocab_only=True)

    assert supported.stat().st_size < 10_000_000


def test_configured_llama_cpp_folder_quantizes_with_its_own_tool(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    folder = write_stub_converter(tmp_path / "llama.cpp", "print('usage: convert')\n")
    quantizer = folder / "build" / "bin" / "llama-quantize"
    quantizer.parent.mkdir(parents=True)
    quantizer.write_text('#!/bin/sh\n[ "$1" = --help ] && { echo usage; exit 1; }\necho "$3" > "$2"\n')
    quantizer.chmod(0o755)
    monkeypatch.setenv("AUTOTRAIN_LLAMA_CPP_DIR", str(folder))
    (tmp_path / "in.gguf").write_bytes(b"GGUF")

    out_file = quantize_gguf(tmp_path / "in.gguf", tmp_path / "out.gguf", quant_type="q8_0")

    assert out_file.read_text() == "Q8_0\n"
    assert (tmp_path / "out.quantize.log").is_file()
