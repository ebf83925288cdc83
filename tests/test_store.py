"""Experiment state persistence: atomic snapshots, the journal and the process lock."""

import json
import multiprocessing

import pytest

from autotrain_agent.errors import ExperimentLockedError, StateError
from autotrain_agent.recipes import make_plan
from autotrain_agent.state import Experiment, Run, Score, Stage
from autotrain_agent.store import ExperimentStore


def _experiment() -> Experiment:
    return Experiment(id="tiny-code-functions-sft", goal="improve code solving with SFT", plan=make_plan("improve code solving with SFT"))


def test_save_and_load_round_trip(tmp_path):
    store = ExperimentStore(tmp_path)
    experiment = _experiment()
    experiment.completed_stages.append(Stage.VALIDATE)
    experiment.baseline_scores.append(Score(benchmark="humaneval", metric="pass@1", value=0.25, num_samples=4, num_passed=1))
    experiment.runs.append(Run(run_id="run-1", title="SFT run 1", output_dir="x", trackio_project="p", trackio_run="run-1"))

    store.save(experiment, event="test")
    loaded = store.load(experiment.id)

    assert loaded == experiment
    assert loaded.next_stage() == Stage.PLAN


def test_journal_appends_every_save(tmp_path):
    store = ExperimentStore(tmp_path)
    experiment = _experiment()

    store.save(experiment, event="created")
    store.save(experiment, event="stage_completed", details={"stage": "validate"})

    events = store.read_journal(experiment.id)
    assert [e["event"] for e in events] == ["created", "stage_completed"]
    assert events[1]["stage"] == "validate"


def test_torn_journal_line_is_skipped(tmp_path):
    store = ExperimentStore(tmp_path)
    experiment = _experiment()
    store.save(experiment, event="created")
    with open(store.folder(experiment.id) / "journal.jsonl", "a") as journal:
        journal.write('{"event": "half')

    events = store.read_journal(experiment.id)

    assert [e["event"] for e in events] == ["created"]


def test_save_leaves_no_temporary_files(tmp_path):
    store = ExperimentStore(tmp_path)
    experiment = _experiment()

    for _ in range(3):
        store.save(experiment, event="again")

    names = sorted(p.name for p in store.folder(experiment.id).iterdir())
    assert names == ["journal.jsonl", "state.json"]
    assert json.loads((store.folder(experiment.id) / "state.json").read_text())["id"] == experiment.id


def test_load_missing_experiment_names_known_ones(tmp_path):
    store = ExperimentStore(tmp_path)
    store.save(_experiment(), event="created")

    with pytest.raises(StateError, match="tiny-code-functions-sft"):
        store.load("nope")


def test_corrupt_state_is_reported(tmp_path):
    store = ExperimentStore(tmp_path)
    experiment = _experiment()
    store.save(experiment, event="created")
    (store.folder(experiment.id) / "state.json").write_text('{"id": 3}')

    with pytest.raises(StateError, match="invalid"):
        store.load(experiment.id)


def _hold_lock(path, ready, release):
    store = ExperimentStore(path)
    with store.lock("exp"):
        ready.set()
        release.wait(10)


def test_second_process_cannot_take_lock(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(ExperimentLockedError, match=str(holder.pid)):
            ExperimentStore(tmp_path).lock("exp").acquire()
    finally:
        release.set()
        holder.join(10)

    with ExperimentStore(tmp_path).lock("exp"):
        pass
