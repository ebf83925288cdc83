"""Compare the embedded experiment run through the agent with the same job scripts run by hand, on a tiny model.

    python bench/agent_overhead.py [--repeats 3] [--train-steps 40] [--eval-problems 2]

The agent side calls `run_experiment` with the rule-based planner and the local backend, in its own process: plan,
validate, score the base model, train with tools/train.py, score the run, report. The hand side runs the same job
scripts with the same configs in the same order: tools/evaluate.py on the base model, tools/train.py, then
tools/evaluate.py on every checkpoint the agent scored. The configs come from the agent's first repeat. Sides
alternate which goes first.

Measured: the wall time of each side, with the goal of the agent at most 1.03 times the hand side. For the agent
process alone, not its training job, which is a separate process: CPU seconds, peak resident memory, and CPU use
while the training job runs, sampled from /proc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe_machine, library_versions  # noqa: E402
from _page import publish_record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOAL = "improve code solving with SFT"
WALL_RATIO_GOAL = 1.03
MAX_NEW_TOKENS = 24
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def run_agent_child(workdir: Path, *, model_dir: Path, rows: Path, train_steps: int, eval_problems: int) -> None:
    """Run the experiment through the agent and print its result and this process's own resource use as JSON."""
    from autotrain_agent.api import run_experiment
    from autotrain_agent.config import Settings
    from autotrain_agent.recipes import PlanOverrides, make_plan

    overrides = PlanOverrides(
        model=str(model_dir), dataset=str(rows), max_steps=train_steps, eval_limit=eval_problems, eval_engine="transformers"
    )
    plan = make_plan(GOAL, overrides)
    plan.hyperparameters.max_length = 256
    # A random tiny model never emits EOS, so every completion runs to the token budget. A small budget keeps it short.
    plan.benchmarks[0].max_new_tokens = MAX_NEW_TOKENS
    settings = Settings(output_dir=workdir, cache_dir=workdir / "cache", progress=False)
    result = run_experiment(plan, settings=settings)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"state": result.state, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}))


def process_cpu_s(pid: int) -> float | None:
    """Return a live process's own user and system CPU seconds, without its children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def is_training(pid: int) -> bool:
    """Return whether a child process of `pid` runs tools/train.py."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return False
    for child in children:
        try:
            if b"train.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


class TrainingIdleSampler(threading.Thread):
    """Sum a process's own CPU time and the wall time over the intervals in which its training job runs."""

    def __init__(self, pid: int, *, interval_s: float = 0.5):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        previous_cpu, previous_at = process_cpu_s(self.pid), time.monotonic()
        while not self.stopped.wait(self.interval_s):
            cpu, now = process_cpu_s(self.pid), time.monotonic()
            if cpu is None:
                return
            if is_training(self.pid) and previous_cpu is not None:
                self.cpu_s += cpu - previous_cpu
                self.wall_s += now - previous_at
            previous_cpu, previous_at = cpu, now


def run_agent(workdir: Path, *, model_dir: Path, rows: Path, train_steps: int, eval_problems: int) -> dict:
    """Run the agent side in a child process and return its wall time and the agent process's resource use."""
    command = [
        sys.executable, __file__, "--child", str(workdir), "--model-dir", str(model_dir), "--rows", str(rows),
        "--train-steps", str(train_steps), "--eval-problems", str(eval_problems),
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    sampler = TrainingIdleSampler(process.pid)
    sampler.start()
    output, _ = process.communicate()
    wall_s = time.monotonic() - started
    sampler.stopped.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"The agent side exited with {process.returncode}; run it alone with --child to see why.")
    result = json.loads(output.strip().splitlines()[-1])
    if result["state"] != "succeeded":
        raise SystemExit(f"The agent's experiment ended as {result['state']!r}, not 'succeeded'; see {workdir}.")
    idle_percent = 100 * sampler.cpu_s / sampler.wall_s if sampler.wall_s else float("nan")
    return {**result, "wall_s": wall_s, "training_cpu_percent": idle_percent, "training_wall_s": sampler.wall_s}


def hand_configs(agent_dir: Path, model_dir: Path, *, eval_problems: int) -> list[tuple[str, dict]]:
    """Return the (script, config) sequence that repeats the agent's jobs, read from its saved state."""
    experiment_dir = next((agent_dir / "training_runs").glob("*/state.json")).parent
    state = json.loads((experiment_dir / "state.json").read_text())
    run = state["runs"][0]
    train_config = json.loads((Path(run["output_dir"]) / "run_config.json").read_text())
    max_new_tokens = state["plan"]["benchmarks"][0]["max_new_tokens"]

    def evaluation(label: str, model_path: str, base_model_path: str | None) -> dict:
        return {
            "label": label, "model_path": model_path, "base_model_path": base_model_path, "engine": "transformers",
            "limit": eval_problems, "max_new_tokens": max_new_tokens, "cache_dir": str(agent_dir / "cache"),
        }

    scored = [checkpoint["path"] for checkpoint in run["checkpoints"] if checkpoint.get("scores")]
    return [
        ("tools/evaluate.py", evaluation("base", str(model_dir), None)),
        ("tools/train.py", train_config),
        *(("tools/evaluate.py", evaluation(f"run-1-{Path(path).name}", path, str(model_dir))) for path in scored),
    ]


def run_by_hand(workdir: Path, sequence: list[tuple[str, dict]]) -> float:
    """Run the job scripts one after another with fresh output folders and return the wall time in seconds."""
    train_dir = workdir / "run-1"
    prepared = []
    for index, (script, config) in enumerate(sequence):
        config = dict(config)
        if script == "tools/train.py":
            config.update(output_dir=str(train_dir), trackio_project="hand", run_id="run-1")
        else:
            # A checkpoint path from the agent's run is replaced by the same folder of this side's own run.
            if "training_runs" in config["model_path"]:
                config["model_path"] = str(train_dir / Path(config["model_path"]).name)
            config["output_dir"] = str(workdir / f"eval-{index}")
        path = workdir / f"config-{index}.json"
        path.write_text(json.dumps(config))
        prepared.append((script, path))

    # The same thread setting as the local backend gives its jobs, so only the agent's own work differs.
    env = {**os.environ, "TRACKIO_DIR": str(workdir / "trackio"), "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
    started = time.monotonic()
    for script, path in prepared:
        subprocess.run([sys.executable, str(REPO / script), "--config", str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return time.monotonic() - started


def measure(*, repeats: int, train_steps: int, eval_problems: int) -> dict:
    """Run both sides `repeats` times, alternating, and return their measurements."""
    from autotrain_agent.testing import build_tiny_chat_model, write_code_rows

    root = Path(tempfile.mkdtemp(prefix="autotrain-bench-agent-"))
    model_dir = build_tiny_chat_model(root / "tiny-model")
    rows = write_code_rows(root / "rows.jsonl", count=32)
    agent_runs, hand_walls, sequence = [], [], None
    for repeat in range(repeats):
        sides = ("agent", "hand") if repeat % 2 == 0 else ("hand", "agent")
        if sequence is None:
            sides = ("agent", "hand")
        for side in sides:
            workdir = root / f"{side}-{repeat}"
            if side == "agent":
                agent_runs.append(run_agent(workdir, model_dir=model_dir, rows=rows, train_steps=train_steps, eval_problems=eval_problems))
                sequence = sequence or hand_configs(workdir, model_dir, eval_problems=eval_problems)
            else:
                workdir.mkdir(parents=True)
                hand_walls.append(run_by_hand(workdir, sequence))
            print(f"{side} repeat {repeat}: {agent_runs[-1]['wall_s'] if side == 'agent' else hand_walls[-1]:.1f} s", flush=True)
    return {"agent": agent_runs, "hand": hand_walls, "jobs": [script for script, _ in sequence]}


def render_record(results: dict, *, machine: str, repeats: int, train_steps: int, eval_problems: int) -> str:
    """Return the Markdown record."""
    agent_walls = [run["wall_s"] for run in results["agent"]]
    agent_s, hand_s = statistics.median(agent_walls), statistics.median(results["hand"])
    ratio = agent_s / hand_s
    cpu_s = statistics.median(run["cpu_s"] for run in results["agent"])
    peak_mb = max(run["peak_rss_mb"] for run in results["agent"])
    idle = statistics.median(run["training_cpu_percent"] for run in results["agent"])
    return "\n".join([
        f"### Agent overhead: embedded experiment vs the job scripts by hand ({dt.date.today().isoformat()})",
        "",
        f"Script: `bench/agent_overhead.py --repeats {repeats} --train-steps {train_steps} --eval-problems {eval_problems}`. "
        f"Machine: {machine}. Versions: {library_versions()}.",
        f"Tiny chat model (hidden 64, 2 layers), 32 code rows, {train_steps} training steps, {eval_problems} HumanEval "
        f"problems of {MAX_NEW_TOKENS} new tokens per evaluation; hand sequence: {', '.join(results['jobs'])}. Median of {repeats}, alternating order.",
        "",
        "| Side | Median wall s | All s |",
        "|---|---|---|",
        f"| agent (`run_experiment`, local backend) | {agent_s:.1f} | {', '.join(f'{s:.1f}' for s in agent_walls)} |",
        f"| job scripts by hand | {hand_s:.1f} | {', '.join(f'{s:.1f}' for s in results['hand'])} |",
        "",
        f"Ratio agent / hand: {ratio:.2f} (goal at most {WALL_RATIO_GOAL}: {'met' if ratio <= WALL_RATIO_GOAL else 'missed'}). "
        f"Agent process alone (evaluation runs inside it on the local backend): {cpu_s:.1f} CPU s, peak RSS "
        f"{peak_mb:.0f} MB, {idle:.1f} % of one core while its training job ran.",
    ]) + "\n"


def run_benchmark(*, quick: bool) -> str:
    """Run the suite's size of this benchmark and return its record."""
    repeats, train_steps, eval_problems = (1, 5, 1) if quick else (3, 20, 2)
    machine = describe_machine()
    results = measure(repeats=repeats, train_steps=train_steps, eval_problems=eval_problems)
    return render_record(results, machine=machine, repeats=repeats, train_steps=train_steps, eval_problems=eval_problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--train-steps", type=int, default=40, help="training steps of the run (default 40)")
    parser.add_argument("--eval-problems", type=int, default=2, help="HumanEval problems per evaluation (default 2)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help="page to append the record to (default: print only)")
    args = parser.parse_args()
    if args.child:
        run_agent_child(args.child, model_dir=args.model_dir, rows=args.rows, train_steps=args.train_steps, eval_problems=args.eval_problems)
        return 0

    machine = describe_machine()
    results = measure(repeats=args.repeats, train_steps=args.train_steps, eval_problems=args.eval_problems)
    record = render_record(results, machine=machine, repeats=args.repeats, train_steps=args.train_steps, eval_problems=args.eval_problems)
    publish_record(record, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
