"""`autotrain-agent publish EXPERIMENT`: upload the exported model and GGUF files with validated model cards."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Settings
from . import EXIT_OK

NAME = "publish"


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Register the `publish` subcommand."""
    publish = subparsers.add_parser(
        NAME, parents=parents, help="publish an exported experiment to the Hub", description="Upload weights, GGUF files and model cards."
    )
    publish.add_argument("experiment", help="experiment id, exported with `autotrain-agent export`")
    publish.add_argument("--repo", help="Hub repository for the merged model (or the adapter), e.g. me/smollm2-code-sft")
    publish.add_argument("--gguf-repo", help="Hub repository for the GGUF files, e.g. me/smollm2-code-sft-GGUF")
    publish.add_argument("--adapter", action="store_true", help="upload the LoRA adapter instead of the merged weights")
    publish.add_argument("--license", help="license id for the card (default: the base model's license when known)")
    publish.add_argument("--private", action="store_true", help="create new repositories as private")
    publish.add_argument("--to-folder", type=Path, help="write a Hub-shaped folder per repository here instead of uploading")
    publish.add_argument("--endpoint", help="Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co)")
    publish.add_argument("--output-dir", type=Path, default=Path.cwd(), help="folder that contains training_runs/ (default: current folder)")
    publish.set_defaults(handler=publish_command)


def publish_command(args: argparse.Namespace) -> int:
    """Validate the cards, then upload (or write to `--to-folder`) and record where the files went."""
    from ..loop import load_saved_experiment
    from ..publish import build_targets, publish_to_folder, publish_to_hub

    ctx = load_saved_experiment(args.experiment, Settings(output_dir=args.output_dir.resolve()))
    experiment = ctx.experiment
    targets = build_targets(
        experiment, repo_id=args.repo, gguf_repo_id=args.gguf_repo, license=args.license, upload_adapter=args.adapter
    )
    if args.to_folder:
        for repo_id, folder in publish_to_folder(targets, args.to_folder.resolve()).items():
            print(f"{repo_id}: {folder}")
        return EXIT_OK

    from huggingface_hub import HfApi

    published = publish_to_hub(targets, HfApi(endpoint=args.endpoint), private=args.private)
    kinds = {args.repo: "model", args.gguf_repo: "gguf"}
    with ctx.store.lock(experiment.id):
        experiment.export.published = {kinds[repo_id]: repo_id for repo_id in published}
        ctx.record("model_published", repositories=list(published))
    for repo_id, url in published.items():
        print(f"{repo_id}: {url}")
    return EXIT_OK
