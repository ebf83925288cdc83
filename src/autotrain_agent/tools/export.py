"""The `export_model` tool: merge a run's checkpoint and export verified GGUF files."""

from __future__ import annotations

import logging
from pathlib import Path

from ..context import ExperimentContext
from ..errors import StateError
from ..state import Run, Stage

logger = logging.getLogger(__name__)


def export_model(ctx: ExperimentContext, run_id: str | None = None, quant_types: tuple[str, ...] | None = None) -> str:
    """Merge the run's best checkpoint into the base model and write verified F16 and quantized GGUF files.

    The best checkpoint is the one evaluation selected; a run that was not evaluated exports its last.

    Files go to `<experiment folder>/export/`. The result is stored in `experiment.export`, and `Stage.EXPORT`
    completes when the plan has it.

    Args:
        ctx: The experiment.
        run_id: The run to export; `None` takes the latest succeeded run.
        quant_types: llama.cpp file types to make from the F16 file; `None` means Q4_K_M.

    Raises:
        StateError: If no succeeded run with a checkpoint exists, or the base model is not resolved.
        ConversionError: If the weights fail the preflight or any file fails verification.
    """
    from ..export import DEFAULT_QUANT_TYPES, plan_export
    from ..export import export_model as export_folder
    from ..merge import is_adapter_folder, merge_adapter

    experiment = ctx.experiment
    run = _run_to_export(ctx, run_id)
    checkpoint = checkpoint_to_export(run)
    if not experiment.model_path:
        raise StateError(f"Experiment {experiment.id!r} has no resolved base model; call `validate_dataset` first.")

    model_dir, merge_choice = checkpoint, None
    if is_adapter_folder(checkpoint):
        plan = plan_export(checkpoint)
        # An adapter GGUF needs its base GGUF beside it at run time; one merged file is what users load.
        ctx.decide(by="system", action="merge the adapter before GGUF conversion", reason=plan.reason, plan=plan.kind)
        model_dir = merge_adapter(Path(experiment.model_path), checkpoint, Path(run.output_dir) / "merged")
        merge_choice = _check_merge_parity(Path(experiment.model_path), checkpoint, model_dir)
    ctx.echo(f"Exporting {run.run_id} to GGUF ({', '.join(quant_types or DEFAULT_QUANT_TYPES)})...")
    record = export_folder(
        model_dir,
        ctx.folder / "export",
        name=experiment.id,
        cache_dir=ctx.settings.cache_dir,
        quant_types=tuple(quant_types or DEFAULT_QUANT_TYPES),
    )
    record.run_id = run.run_id
    record.checkpoint_path = str(checkpoint)
    if merge_choice is not None:
        record.merge_base = merge_choice.chosen
        record.merge_parity = {
            name: {"token_agreement": p.token_agreement, "kl_divergence": p.kl_divergence}
            for name, p in merge_choice.parity.items()
        }

    experiment.export = record
    if Stage.EXPORT in experiment.plan.stages:
        ctx.complete_stage(Stage.EXPORT, run_id=run.run_id)
    else:
        ctx.record("model_exported", run_id=run.run_id)
    summary = "; ".join(
        f"{Path(f.path).name}: {f.size_bytes / 1e6:.1f} MB, {f.bits_per_weight:.2f} bits/weight, "
        f"fallback tensors {f.fallback_tensors}, probes {'match' if f.probes_match else 'differ'}"
        for f in record.files
    )
    ctx.echo(summary)
    return summary


def checkpoint_to_export(run: Run) -> Path:
    """Return the run's best checkpoint as selected by evaluation, else its last one."""
    return Path(run.best_checkpoint_path or run.checkpoints[-1].path)


def _check_merge_parity(base_dir: Path, adapter_dir: Path, merged_dir: Path):
    """Compare the merged folder with the adapter applied to its training base, unmerged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..merge import load_adapter
    from ..merge_parity import choose_merge

    # NOTE: training runs on the unquantized base here, so the merge base is the training base and only one
    # candidate exists. A 4-bit training base would add the rounded base as a second candidate.
    reference = load_adapter(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    return choose_merge(reference, {"training base": merged}, AutoTokenizer.from_pretrained(base_dir))


def _run_to_export(ctx: ExperimentContext, run_id: str | None) -> Run:
    experiment = ctx.experiment
    if run_id is not None:
        try:
            run = experiment.run(run_id)
        except KeyError as err:
            raise StateError(f"Unknown run {run_id!r}; export one of {[r.run_id for r in experiment.runs]}.") from err
    else:
        run = next((r for r in reversed(experiment.runs) if r.status == "succeeded"), None)
        if run is None:
            raise StateError(f"Experiment {experiment.id!r} has no succeeded run to export; train first.")
    if run.status != "succeeded" or not run.checkpoints:
        raise StateError(f"Run {run.run_id!r} is {run.status!r} with {len(run.checkpoints)} checkpoints; export a succeeded run.")
    return run
