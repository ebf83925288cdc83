"""Hugging Face Jobs hardware: flavors and prices, a training memory estimate, and the flavor choice.

Prices come from `HfApi.list_jobs_hardware()` when the Hub responds, are cached with the date they were fetched,
and fall back to a snapshot shipped in the package, so an offline machine can still estimate. Every price table
names its source and date, and the report repeats both.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .errors import HardwareError
from .state import Method

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "hardware_snapshot.json"
CACHE_FILE = "jobs_hardware.json"
PriceSource = Literal["list_jobs_hardware", "cache", "bundled snapshot"]

# T4 GPUs (compute capability 7.5) have no bfloat16, which the job script trains in on a GPU.
FLAVORS_WITHOUT_BF16 = ("T4",)
# Bytes per parameter held on the GPU while training. Full fine-tuning with AdamW in mixed precision keeps bf16
# weights and gradients (2 + 2), fp32 master weights (4) and two fp32 moments (8). LoRA keeps frozen bf16 weights;
# adapter weights, gradients and optimizer state add a few percent, counted below as 10% of the weight bytes.
FULL_BYTES_PER_PARAMETER = 16
LORA_BYTES_PER_PARAMETER = 2 * 1.10
# CUDA context, allocator fragmentation and kernels' workspaces.
GPU_OVERHEAD_GB = 2.0


class Flavor(BaseModel):
    """One hardware flavor of Hugging Face Jobs with its price."""

    name: str
    """Flavor name passed to `run_uv_job`, e.g. `a10g-large`."""
    pretty_name: str
    """Human-readable name, e.g. `Nvidia A10G - large`."""
    gpu_model: str | None = None
    """Accelerator model, e.g. `A10G`; `None` for CPU flavors."""
    gpu_count: int = 0
    """GPUs in the machine."""
    gpu_memory_gb: float = 0.0
    """Memory of one GPU in GB."""
    usd_per_hour: float
    """Price of one hour of the whole machine."""

    @property
    def has_bf16(self) -> bool:
        """Whether the GPU trains in bfloat16."""
        return self.gpu_count > 0 and self.gpu_model not in FLAVORS_WITHOUT_BF16


class PriceTable(BaseModel):
    """The flavors on offer, where their prices came from and when."""

    flavors: list[Flavor]
    """Every flavor, in the order the source listed them."""
    source: PriceSource
    """`list_jobs_hardware` (fetched now), `cache` (fetched earlier) or `bundled snapshot` (shipped, offline)."""
    recorded_on: dt.date
    """Date the prices were fetched or recorded."""

    def flavor(self, name: str) -> Flavor:
        """Return the flavor called `name`.

        Raises:
            HardwareError: If no flavor has that name.
        """
        for flavor in self.flavors:
            if flavor.name == name:
                return flavor
        known = ", ".join(f.name for f in self.flavors)
        raise HardwareError(f"Unknown hardware flavor {name!r}; choose one of: {known}.")

    def describe_source(self) -> str:
        """Return the source and date for the report, e.g. `list_jobs_hardware, 2026-12-04`."""
        return f"{self.source}, {self.recorded_on.isoformat()}"


class MemoryEstimate(BaseModel):
    """GPU memory that training is estimated to need, per GPU."""

    weights_and_optimizer_gb: float
    """Weights, gradients and optimizer state."""
    activations_gb: float
    """Activations of one micro-batch with gradient checkpointing."""
    total_gb: float
    """Sum of the parts plus the CUDA overhead."""


def flavor_from_api(entry: dict[str, Any]) -> Flavor:
    """Build a `Flavor` from one item of the `/api/jobs/hardware` JSON response."""
    accelerator = entry.get("accelerator") or None
    per_unit = float(entry["unitCostUSD"])
    unit = entry.get("unitLabel", "minute")
    per_hour = per_unit * {"second": 3600, "minute": 60, "hour": 1}.get(unit, 60)
    gpu_count, gpu_memory_gb, gpu_model = 0, 0.0, None
    if accelerator and accelerator.get("type", "gpu") == "gpu":
        gpu_model = accelerator.get("model")
        gpu_count = int(float(accelerator.get("quantity") or 1))
        gpu_memory_gb = _parse_gigabytes(accelerator.get("vram", "0"))
    return Flavor(
        name=entry["name"],
        pretty_name=entry.get("prettyName", entry["name"]),
        gpu_model=gpu_model,
        gpu_count=gpu_count,
        gpu_memory_gb=gpu_memory_gb,
        usd_per_hour=round(per_hour, 4),
    )


def _parse_gigabytes(text: str) -> float:
    match = re.search(r"([\d.]+)\s*(GB|GiB|G)?", str(text))
    return float(match.group(1)) if match else 0.0


def load_price_table(*, cache_dir: Path, api: Any | None = None, refresh: bool = False) -> PriceTable:
    """Return the price table from the Hub, else from the cache, else from the bundled snapshot.

    The Hub is asked only when `refresh` is true or no cache exists, and only when `api` (an `HfApi`) is given.
    A failed request falls back with a warning; it never raises.
    """
    cache_path = cache_dir / CACHE_FILE
    if api is not None and (refresh or not cache_path.is_file()):
        try:
            raw = _fetch_raw_hardware(api)
        except Exception as err:  # noqa: BLE001 - any Hub failure falls back to older prices
            logger.warning("Could not fetch Jobs hardware prices (%s); using cached or bundled prices.", err)
        else:
            table = PriceTable(flavors=[flavor_from_api(e) for e in raw], source="list_jobs_hardware", recorded_on=dt.date.today())
            cache_dir.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps({"recorded_on": table.recorded_on.isoformat(), "hardware": raw}), encoding="utf-8")
            return table
    if cache_path.is_file():
        try:
            cached = json.loads(cache_path.read_text(encoding="utf-8"))
            flavors = [flavor_from_api(e) for e in cached["hardware"]]
            return PriceTable(flavors=flavors, source="cache", recorded_on=dt.date.fromisoformat(cached["recorded_on"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("Price cache %s is unreadable (%s); using the bundled prices.", cache_path, err)
    return load_bundled_price_table()


def _fetch_raw_hardware(api: Any) -> list[dict[str, Any]]:
    """Return `api.list_jobs_hardware()` as items shaped like the `/api/jobs/hardware` JSON, ready to cache."""
    items = []
    for hardware in api.list_jobs_hardware():
        accelerator = hardware.accelerator
        items.append(
            {
                "name": hardware.name,
                "prettyName": hardware.pretty_name,
                "cpu": hardware.cpu,
                "ram": hardware.ram,
                "accelerator": None
                if accelerator is None
                else {"type": accelerator.type, "model": accelerator.model, "quantity": accelerator.quantity, "vram": accelerator.vram},
                "unitCostMicroUSD": hardware.unit_cost_micro_usd,
                "unitCostUSD": hardware.unit_cost_usd,
                "unitLabel": hardware.unit_label,
            }
        )
    return items


def load_bundled_price_table() -> PriceTable:
    """Return the price snapshot shipped in the package."""
    snapshot = json.loads(resources.files("autotrain_agent").joinpath(SNAPSHOT_FILE).read_text(encoding="utf-8"))
    return PriceTable(
        flavors=[flavor_from_api(e) for e in snapshot["hardware"]],
        source="bundled snapshot",
        recorded_on=dt.date.fromisoformat(snapshot["recorded_on"]),
    )


def estimate_memory_gb(
    num_parameters: int,
    *,
    method: Method,
    use_lora: bool,
    max_length: int,
    per_device_batch_size: int,
    gpu_count: int = 1,
) -> MemoryEstimate:
    """Estimate the GPU memory per GPU that training needs.

    Full fine-tuning on several GPUs shards weights, gradients and optimizer state across them (FSDP or ZeRO-3
    through accelerate); LoRA keeps a whole copy of the frozen model on every GPU.

    Limitations:
        Activations use a rule of thumb for decoder models with gradient checkpointing: about
        `sqrt(num_parameters) * 0.35` bytes per token, which gives 0.5 GB for 512 tokens x 2 sequences of an
        8B model. DPO holds a reference model as well: counted as a second set of bf16 weights unless LoRA is used.
    """
    bytes_per_parameter = LORA_BYTES_PER_PARAMETER if use_lora else FULL_BYTES_PER_PARAMETER
    state_gb = num_parameters * bytes_per_parameter / 1e9
    if method == "dpo" and not use_lora:
        state_gb += num_parameters * 2 / 1e9
    if not use_lora and gpu_count > 1:
        state_gb /= gpu_count
    tokens = max_length * per_device_batch_size
    activations_gb = tokens * math.sqrt(num_parameters) * 0.35 / 1e9
    total = state_gb + activations_gb + GPU_OVERHEAD_GB
    return MemoryEstimate(
        weights_and_optimizer_gb=round(state_gb, 1), activations_gb=round(activations_gb, 1), total_gb=round(total, 1)
    )


def choose_flavor(
    table: PriceTable,
    num_parameters: int,
    *,
    method: Method,
    use_lora: bool,
    max_length: int,
    per_device_batch_size: int,
    headroom: float = 0.9,
) -> tuple[Flavor, MemoryEstimate, str]:
    """Return the cheapest GPU flavor whose memory fits training, its memory estimate and the reason.

    Only `headroom` of each GPU's memory is counted as usable. Single-GPU flavors are preferred at equal price;
    LoRA runs only on single-GPU flavors, because a whole model copy per GPU gains nothing but data parallelism.

    Raises:
        HardwareError: If no flavor fits; the message gives the memory needed and the largest GPU on offer.
    """
    candidates = []
    for flavor in table.flavors:
        if not flavor.has_bf16 or (use_lora and flavor.gpu_count > 1):
            continue
        memory = estimate_memory_gb(
            num_parameters,
            method=method,
            use_lora=use_lora,
            max_length=max_length,
            per_device_batch_size=per_device_batch_size,
            gpu_count=flavor.gpu_count,
        )
        if memory.total_gb <= flavor.gpu_memory_gb * headroom:
            candidates.append((flavor.usd_per_hour, flavor.gpu_count, flavor, memory))
    if not candidates:
        single = estimate_memory_gb(num_parameters, method=method, use_lora=use_lora, max_length=max_length, per_device_batch_size=per_device_batch_size)
        largest = max((f for f in table.flavors if f.has_bf16), key=lambda f: f.gpu_memory_gb * f.gpu_count, default=None)
        largest_text = f"{largest.name} ({largest.gpu_count} x {largest.gpu_memory_gb:g} GB)" if largest else "none"
        raise HardwareError(
            f"No hardware flavor fits {num_parameters / 1e9:.1f}B parameters "
            f"({'LoRA' if use_lora else 'full fine-tune'}, {max_length} tokens x batch {per_device_batch_size}): "
            f"about {single.total_gb:g} GB on one GPU, and the largest flavor is {largest_text}. "
            + ("Use a smaller model, a shorter `max_length` or a smaller batch." if use_lora else "Use LoRA, a shorter `max_length` or a smaller batch.")
        )
    _, _, flavor, memory = min(candidates, key=lambda c: (c[0], c[1]))
    reason = (
        f"hardware {flavor.name}: cheapest flavor whose {flavor.gpu_count} x {flavor.gpu_memory_gb:g} GB fits the "
        f"estimated {memory.total_gb:g} GB per GPU, at ${flavor.usd_per_hour:.2f}/h ({table.describe_source()})"
    )
    return flavor, memory, reason
