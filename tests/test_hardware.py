"""Hardware flavors, prices with their source and date, memory estimates and the flavor choice."""

import datetime as dt
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from huggingface_hub import HfApi

from autotrain_agent.errors import HardwareError
from autotrain_agent.hardware import choose_flavor, estimate_memory_gb, load_bundled_price_table, load_price_table

sys.path.insert(0, str(Path(__file__).parent / "backends"))
from fake_jobs_server import FakeJobsServer  # noqa: E402


@pytest.fixture
def table():
    return load_bundled_price_table()


def test_bundled_snapshot_has_source_and_date(table):
    assert table.source == "bundled snapshot"
    assert table.describe_source() == f"bundled snapshot, {table.recorded_on.isoformat()}"
    assert table.flavor("a10g-large").usd_per_hour == pytest.approx(1.5, abs=0.01)
    assert table.flavor("a100x4").gpu_count == 4


def test_unknown_flavor_lists_known(table):
    with pytest.raises(HardwareError, match="Unknown hardware flavor 'b200'.*a10g-large"):
        table.flavor("b200")


def test_prices_fetched_then_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)  # offline mode blocks 127.0.0.1 too
    server = FakeJobsServer().start()
    try:
        api = HfApi(endpoint=server.endpoint, token="hf_fake")
        fetched = load_price_table(cache_dir=tmp_path, api=api)
        cached = load_price_table(cache_dir=tmp_path, api=api)
    finally:
        server.stop()

    assert fetched.source == "list_jobs_hardware"
    assert fetched.recorded_on == dt.date.today()
    assert cached.source == "cache"
    assert server.count("hardware") == 1
    assert cached.flavor("l4x1").usd_per_hour == fetched.flavor("l4x1").usd_per_hour


def test_unreachable_hub_falls_back_to_snapshot(tmp_path):
    api = HfApi(endpoint="http://127.0.0.1:9", token="hf_fake")

    table = load_price_table(cache_dir=tmp_path, api=api)

    assert table.source == "bundled snapshot"


def test_full_fine_tune_needs_more_memory_than_lora():
    lora = estimate_memory_gb(8_000_000_000, method="sft", use_lora=True, max_length=2048, per_device_batch_size=4)
    full = estimate_memory_gb(8_000_000_000, method="sft", use_lora=False, max_length=2048, per_device_batch_size=4)

    assert lora.total_gb < 24 < full.total_gb
    assert full.weights_and_optimizer_gb == 128.0


def test_full_fine_tune_shards_across_gpus():
    one = estimate_memory_gb(8_000_000_000, method="sft", use_lora=False, max_length=2048, per_device_batch_size=4)
    four = estimate_memory_gb(8_000_000_000, method="sft", use_lora=False, max_length=2048, per_device_batch_size=4, gpu_count=4)

    assert four.weights_and_optimizer_gb == one.weights_and_optimizer_gb / 4


@pytest.mark.parametrize(
    ("params", "use_lora", "expected"),
    [
        (600_000_000, True, "l4x1"),  # small LoRA run: the cheapest GPU
        (8_000_000_000, True, "l4x1"),  # 8B LoRA fits 24 GB
        (8_000_000_000, False, "l40sx4"),  # 8B full fine-tune needs sharding over several GPUs
        (30_000_000_000, True, "a100-large"),  # 30B LoRA needs an 80 GB GPU
    ],
)
def test_choice_fits_memory(table, params, use_lora, expected):
    flavor, memory, reason = choose_flavor(table, params, method="sft", use_lora=use_lora, max_length=2048, per_device_batch_size=4)

    assert flavor.name == expected
    assert memory.total_gb <= flavor.gpu_memory_gb * 0.9
    assert expected in reason and "bundled snapshot" in reason


def test_choice_skips_gpus_without_bf16(table):
    flavor, _, _ = choose_flavor(table, 135_000_000, method="sft", use_lora=True, max_length=512, per_device_batch_size=2)

    assert not flavor.name.startswith("t4")


def test_model_no_flavor_fits_is_refused(table):
    with pytest.raises(HardwareError, match=r"No hardware flavor fits 405.0B parameters .*largest flavor is h200x8"):
        choose_flavor(table, 405_000_000_000, method="sft", use_lora=True, max_length=2048, per_device_batch_size=4)


def test_corrupt_cache_falls_back_to_snapshot(tmp_path):
    (tmp_path / "jobs_hardware.json").write_text("{not json")

    table = load_price_table(cache_dir=tmp_path)

    assert table.source == "bundled snapshot"
