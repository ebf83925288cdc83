"""Publish an exported experiment: a model repository, a GGUF repository and a validated model card for each.

The card metadata is checked before anything is uploaded. Weights are committed first and each card last, in its
own commit, so a card the Hub rejects never loses the uploaded weights: fix the card and publish again.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import PublishError
from .state import Experiment

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


@dataclass(frozen=True)
class PublishTarget:
    """One repository to publish: its id, the files that go in it and its card."""

    repo_id: str
    """`owner/name` on the Hub, or the folder name under `--to-folder`."""
    files: dict[str, Path]
    """Local file by path in the repository."""
    card: str
    """README.md text, metadata included."""


def build_targets(
    experiment: Experiment,
    *,
    repo_id: str | None,
    gguf_repo_id: str | None,
    license: str | None = None,
    upload_adapter: bool = False,
) -> list[PublishTarget]:
    """Build the repositories to publish for an exported experiment, with validated cards.

    Args:
        experiment: An experiment with `export` set.
        repo_id: Repository for the merged model (or the adapter); `None` skips it.
        gguf_repo_id: Repository for the GGUF files; `None` skips it.
        license: License id for the card; `None` takes the base model's known license.
        upload_adapter: Publish the LoRA adapter instead of the merged weights.

    Raises:
        PublishError: If nothing was exported, no repository is named, or the card metadata is invalid.
    """
    export = experiment.export
    if export is None:
        raise PublishError(f"Experiment {experiment.id!r} has no exported files; run `autotrain-agent export {experiment.id}` first.")
    if not repo_id and not gguf_repo_id:
        raise PublishError("Name at least one repository with `--repo` or `--gguf-repo`.")
    license = license or _known_license(experiment.plan.base_model)

    targets = []
    if repo_id:
        source = _adapter_folder(experiment) if upload_adapter else Path(export.merged_dir)
        files = {path.relative_to(source).as_posix(): path for path in sorted(source.rglob("*")) if path.is_file() and path.name != CARD_FILE}
        card = render_card(experiment, repo_id=repo_id, gguf_repo_id=gguf_repo_id, license=license, kind="adapter" if upload_adapter else "model")
        targets.append(PublishTarget(repo_id, files, card))
    if gguf_repo_id:
        files = {Path(f.path).name: Path(f.path) for f in export.files}
        card = render_card(experiment, repo_id=gguf_repo_id, gguf_repo_id=gguf_repo_id, license=license, kind="gguf")
        targets.append(PublishTarget(gguf_repo_id, files, card))
    return targets


def _adapter_folder(experiment: Experiment) -> Path:
    """Return the exported checkpoint's folder, which must hold a LoRA adapter."""
    from .merge import is_adapter_folder
    from .tools.export import checkpoint_to_export

    export = experiment.export
    if export.checkpoint_path:
        folder = Path(export.checkpoint_path)
    elif export.run_id:
        folder = checkpoint_to_export(experiment.run(export.run_id))
    else:
        raise PublishError("The export records no run, so there is no adapter to publish; publish the merged model.")
    if not is_adapter_folder(folder):
        raise PublishError(
            f"The exported checkpoint {str(folder)!r} is not a LoRA adapter (a full fine-tune); publish the merged "
            "model without `--adapter`."
        )
    return folder


def render_card(
    experiment: Experiment, *, repo_id: str, gguf_repo_id: str | None, license: str | None, kind: str
) -> str:
    """Render a model card and validate its metadata the way the Hub reads it back.

    Raises:
        PublishError: Naming every invalid field: a repository or base model that is not `owner/name`, a
            missing or malformed license, or evaluation results that do not form a valid model-index.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    plan = experiment.plan
    problems = []
    if not _REPO_ID.match(repo_id):
        problems.append(f"repository {repo_id!r} is not `owner/name`")
    if not _REPO_ID.match(plan.base_model):
        problems.append(f"`base_model` {plan.base_model!r} is not a Hub id; train from a Hub model to publish")
    if not license or not _LICENSE_ID.match(license):
        problems.append(f"`license` {license!r} is not a Hub license id such as 'apache-2.0'; pass `--license`")
    datasets = [plan.dataset.reference] if _REPO_ID.match(plan.dataset.reference) else []
    run = experiment.run(experiment.export.run_id) if experiment.export and experiment.export.run_id else experiment.latest_run
    scores = run.checkpoints[-1].scores if run and run.checkpoints else []
    eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type="openai/openai_humaneval",
            dataset_name="HumanEval" + (f" (first {score.num_samples} problems)" if score.num_samples < 164 else ""),
            metric_type=score.metric,
            metric_value=round(score.value, 4),
        )
        for score in scores
    ]
    if problems:
        raise PublishError(f"The model card for {repo_id!r} is invalid: {'; '.join(problems)}.")

    tags = ["autotrain-agent", plan.method, "trl"]
    library_name = "transformers"
    if kind == "gguf":
        tags += ["gguf", "llama.cpp"]
        library_name = "gguf"
    elif kind == "adapter":
        tags += ["peft", "lora"]
        library_name = "peft"
    try:
        data = ModelCardData(
            base_model=plan.base_model,
            datasets=datasets or None,
            license=license,
            tags=tags,
            pipeline_tag="text-generation",
            library_name=library_name,
            model_name=repo_id.split("/")[-1],
            eval_results=eval_results or None,
        )
    except ValueError as err:
        raise PublishError(f"The model card metadata for {repo_id!r} is invalid: {err}") from err
    card = ModelCard(_card_text(data.to_yaml(), experiment, repo_id=repo_id, gguf_repo_id=gguf_repo_id, kind=kind))
    try:
        parsed = ModelCard(str(card)).data
    except ValueError as err:
        raise PublishError(f"The model card for {repo_id!r} does not parse back: {err}") from err
    if len(parsed.eval_results or []) != len(eval_results):
        raise PublishError(f"The model card for {repo_id!r} lost evaluation results in its model-index.")
    return str(card)


def _card_text(metadata: str, experiment: Experiment, *, repo_id: str, gguf_repo_id: str | None, kind: str) -> str:
    plan = experiment.plan
    export = experiment.export
    lines = [
        "---", metadata.strip(), "---", "", f"# {repo_id.split('/')[-1]}", "",
        (
            f"{plan.base_model} fine-tuned with {plan.method.upper()}{' and LoRA' if plan.lora else ''} by autotrain-agent "
            f"on `{plan.dataset.reference}`. Goal: {plan.goal}"
        ),
        "",
    ]
    if kind == "gguf" and export:
        lines += ["## Files", "", "| File | Type | Size | Bits per weight |", "|---|---|---|---|"]
        lines += [f"| {Path(f.path).name} | {f.quant_type} | {f.size_bytes / 1e6:.1f} MB | {f.bits_per_weight:.2f} |" for f in export.files]
        quant = next((f.quant_type for f in export.files if f.quant_type != "F16"), "F16")
        lines += ["", "## Use", "", "```", f"llama-server -hf {gguf_repo_id}:{quant}", "```", ""]
    else:
        lines += ["## Use", "", "```python", "from transformers import pipeline", "", f'generator = pipeline("text-generation", model="{repo_id}")', "```", ""]
    scores = experiment.baseline_scores
    if scores:
        lines += ["## Evaluation", "", f"Base model: {', '.join(f'{s.benchmark} {s.metric} {s.value:.3f}' for s in scores)}.", ""]
    return "\n".join(lines)


def _known_license(base_model: str) -> str | None:
    from .model_source import SHIPPED_MODELS

    shipped = SHIPPED_MODELS.get(base_model)
    return shipped.license.lower() if shipped else None


def publish_to_folder(targets: list[PublishTarget], folder: Path) -> dict[str, str]:
    """Write each repository as `folder/<owner>/<name>/`, the layout the Hub would hold, card last.

    Returns:
        The folder of each repository by repository id.
    """
    written = {}
    for target in targets:
        destination = folder / target.repo_id
        for path_in_repo, source in target.files.items():
            (destination / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / path_in_repo)
        (destination / CARD_FILE).write_text(target.card, encoding="utf-8")
        written[target.repo_id] = str(destination)
    return written


def publish_to_hub(targets: list[PublishTarget], api, *, private: bool = False) -> dict[str, str]:
    """Create each repository, commit its files, then commit its card in a separate, last commit.

    Args:
        targets: From `build_targets`.
        api: A `huggingface_hub.HfApi`; its endpoint and token decide where the files go.
        private: Create new repositories as private.

    Returns:
        The URL of each repository by repository id.

    Raises:
        PublishError: If the Hub rejects a repository, an upload or a card. Commits made before the failure stay.
    """
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    urls = {}
    for target in targets:
        try:
            url = api.create_repo(target.repo_id, repo_type="model", private=private, exist_ok=True)
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in target.files.items()]
            api.create_commit(target.repo_id, operations=operations, commit_message="Upload weights from autotrain-agent")
        except HfHubHTTPError as err:
            raise PublishError(f"The Hub rejected the upload to {target.repo_id!r}: {err}") from err
        logger.info("Uploaded %d files to %s.", len(target.files), target.repo_id)
        try:
            api.create_commit(
                target.repo_id,
                operations=[CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=target.card.encode("utf-8"))],
                commit_message="Add model card",
            )
        except (HfHubHTTPError, ValueError) as err:
            raise PublishError(
                f"The Hub rejected the model card of {target.repo_id!r}: {err}. The weights are uploaded; fix the "
                "card metadata and publish again."
            ) from err
        urls[target.repo_id] = str(url)
    return urls
