"""The command line: plan printing, errors without tracebacks, status, and help that names units."""

import json

import pytest

from autotrain_agent.cli import main


def test_plan_only_json_is_machine_readable(tmp_path, capsys):
    status = main(["improve code solving with SFT", "--plan-only", "--json", "--output-dir", str(tmp_path)])

    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["experiment_id"] == "smollm2-135m-instruct-code-functions-sft"
    assert document["plan"]["method"] == "sft"
    assert document["plan"]["benchmarks"][0]["name"] == "humaneval"
    assert not (tmp_path / "training_runs").exists()


def test_plan_only_text_lists_choices_and_reasons(tmp_path, capsys):
    main(["run", "improve code solving with SFT", "--plan-only", "--output-dir", str(tmp_path)])

    text = capsys.readouterr().out
    for label in ("model:", "dataset:", "method:", "hyperparameters:", "benchmark:", "backend:", "expected time:", "why:"):
        assert label in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["make it better", "--plan-only"], "--dataset"),  # no known domain
        (["improve code solving", "--method", "ppo", "--plan-only"], "Unknown method 'ppo'"),
        (["improve code solving with DPO", "--plan-only"], "preference JSONL"),  # DPO without preference data
        (["improve code solving with PPO", "--plan-only"], "supported methods: sft, dpo, grpo"),  # unknown method
        (["improve code", "--benchmark", "mmlu", "--plan-only"], "Unknown benchmark 'mmlu'"),
    ],
)
def test_bad_input_exits_2_without_traceback(argv, message, tmp_path, capsys):
    status = main([*argv, "--output-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_unknown_model_is_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n")

    status = main(["improve code", "--model", "acme/no-such-model-7b", "--dataset", str(rows), "--output-dir", str(tmp_path), "--no-progress"])

    err = capsys.readouterr().err
    assert status == 2
    assert "acme/no-such-model-7b" in err
    assert "Traceback" not in err


def test_missing_dataset_file_is_clear_error(tmp_path, capsys):
    status = main(["improve code", "--dataset", str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert status == 2
    assert "nope.jsonl" in err and "does not exist" in err


def test_status_without_experiments(tmp_path, capsys):
    status = main(["status", "--output-dir", str(tmp_path)])

    assert status == 0
    assert "No experiments" in capsys.readouterr().out


def test_help_names_units(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])

    text = " ".join(capsys.readouterr().out.split())
    assert "optimizer steps" in text
    assert "first N by task number" in text
    assert "max length" not in text


def run_without_terminal(*argv, tmp_path):
    """Run the CLI in a subprocess with stdin from /dev/null and stdout and stderr captured: no terminal."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "AUTOTRAIN_AGENT_CACHE": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "autotrain_agent.cli", *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120
    )


def test_estimate_works_without_terminal(tmp_path):
    result = run_without_terminal("estimate", "--model", "Qwen/Qwen3-0.6B", "--dataset", "me/rows", "--rows", "10000", "--json", tmp_path=tmp_path)

    estimate = json.loads(result.stdout)
    assert result.returncode == 0
    assert estimate["flavor"] == "l4x1"
    assert estimate["timeout"].endswith("m") and estimate["timeout"][:-1].isdigit()
    assert "read from its name" in result.stderr


def test_estimate_unknown_size_asks_for_params(tmp_path):
    result = run_without_terminal("estimate", "--model", "someone/mystery", "--dataset", "me/rows", "--rows", "10", tmp_path=tmp_path)

    assert result.returncode == 2
    assert "--params" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_approval_without_terminal_rejects(tmp_path):
    import subprocess
    import sys

    from test_approval import REQUEST

    code = (
        "import sys; from autotrain_agent.approval import ApprovalRequest, ConsoleApprover; "
        "print(ConsoleApprover().review(ApprovalRequest.model_validate_json(sys.argv[1])).reason)"
    )

    result = subprocess.run([sys.executable, "-c", code, REQUEST.model_dump_json()], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "no terminal" in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backend", "hf-jobs"], "--hub-repo"),  # checkpoints need somewhere to go
        (["--backend", "hf-jobs", "--hub-repo", "me/out", "--quick-test", "0"], "positive number of rows"),
        (["--backend", "hf-jobs", "--hub-repo", "me/out", "--quick-test", "5", "--no-quick-test"], "contradict"),
        (["--quick-test", "50"], "--backend hf-jobs"),  # the local backend is free
    ],
)
def test_jobs_flags_checked_without_terminal(flags, message, tmp_path):
    result = run_without_terminal("improve code solving", *flags, "--plan-only", "--output-dir", str(tmp_path), tmp_path=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("flags", "samples"),
    [
        ([], 100),  # the default
        (["--quick-test", "40"], 40),
        (["--no-quick-test"], None),
    ],
)
def test_quick_test_flags_set_plan(flags, samples, tmp_path, capsys):
    argv = ["improve code solving", "--backend", "hf-jobs", "--hub-repo", "me/out", "--params", "600M", *flags]

    status = main([*argv, "--plan-only", "--json", "--output-dir", str(tmp_path)])

    assert status == 0
    assert json.loads(capsys.readouterr().out)["plan"]["quick_test_samples"] == samples


def test_resume_unknown_experiment_fails(tmp_path, capsys):
    status = main(["resume", "no-such-experiment", "--output-dir", str(tmp_path)])

    assert status == 2
    assert "No saved experiment 'no-such-experiment'" in capsys.readouterr().err


def test_status_unknown_experiment_lists_known(tmp_path, capsys):
    from autotrain_agent.recipes import make_plan
    from autotrain_agent.state import Experiment
    from autotrain_agent.store import ExperimentStore

    store = ExperimentStore(tmp_path / "training_runs")
    store.save(Experiment(id="exp-known", goal="improve code solving", plan=make_plan("improve code solving")), event="created")

    status = main(["status", "exp-typo", "--output-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert status == 2
    assert "No experiment 'exp-typo'" in err
    assert "known experiments: exp-known" in err


def test_error_under_json_is_json_object(tmp_path, capsys):
    status = main(["status", "exp-typo", "--json", "--output-dir", str(tmp_path)])

    document = json.loads(capsys.readouterr().out)
    assert status == 2
    assert "exp-typo" in document["error"]
    assert document["type"] == "ExperimentNotFoundError"
    assert "--help" in document["hint"]


def test_usage_error_under_json_is_json_object(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", "--dataset", "rows.jsonl", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 2
    assert "--model" in document["error"]
    assert document["type"] == "UsageError"
    assert "autotrain-agent estimate --help" in document["hint"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--plan-only", "--json", "improve code solving"],  # flags before the goal
        ["--method", "sft", "improve code solving", "--plan-only", "--json"],
        ["-v", "run", "improve code solving", "--plan-only", "--json"],  # verbosity before the subcommand
    ],
)
def test_flags_before_goal_accepted(argv, tmp_path, capsys):
    status = main([*argv, "--output-dir", str(tmp_path)])

    assert status == 0
    assert json.loads(capsys.readouterr().out)["plan"]["method"] == "sft"


def test_run_json_without_plan_only_rejected(tmp_path, capsys):
    status = main(["improve code solving", "--json", "--output-dir", str(tmp_path)])

    document = json.loads(capsys.readouterr().out)
    assert status == 2
    assert "--plan-only" in document["error"]
    assert not (tmp_path / "training_runs").exists()


@pytest.mark.parametrize("flag", ["--rows", "--epochs", "--max-length", "--batch-size"])
def test_estimate_rejects_non_positive_counts(flag, capsys):
    status = main(["estimate", "--model", "Qwen/Qwen3-0.6B", "--dataset", "rows.jsonl", "--params", "0.6B", flag, "-5"])

    err = capsys.readouterr().err
    assert status == 2
    assert f"`{flag}` must be a positive number, got -5" in err


def test_help_lists_same_methods_everywhere(capsys):
    from autotrain_agent.recipes import describe_methods

    texts = {}
    for command in ("run", "estimate", "validate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        texts[command] = " ".join(capsys.readouterr().out.split())

    for command, text in texts.items():
        assert f"training method: {describe_methods()}" in text, command


def test_resume_rejects_invalid_policy_before_running(tmp_path, capsys):
    from autotrain_agent.recipes import make_plan
    from autotrain_agent.state import Experiment
    from autotrain_agent.store import ExperimentStore

    store = ExperimentStore(tmp_path / "training_runs")
    store.save(Experiment(id="exp", goal="improve code solving", plan=make_plan("improve code solving")), event="created")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: too-soon\n    when: [{signal: step, above: 1}]\n    action: explode\n")

    status = main(["resume", "exp", "--policy", str(rules), "--output-dir", str(tmp_path)])

    assert status != 0
    assert "rule 'too-soon'" in capsys.readouterr().err
    assert [event["event"] for event in store.read_journal("exp")] == ["created"]


def test_eval_limit_above_humaneval_rejected(tmp_path, capsys):
    status = main(["improve code solving", "--eval-limit", "500", "--plan-only", "--output-dir", str(tmp_path)])

    assert status == 2
    assert "at most 164" in capsys.readouterr().err


def test_unwritable_output_dir_is_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n")

    status = main(["improve code", "--dataset", str(rows), "--output-dir", str(blocker / "work"), "--no-progress"])

    err = capsys.readouterr().err
    assert status == 1
    assert "writable `--output-dir`" in err
    assert "Traceback" not in err


def test_rerun_with_changed_flags_names_differences(tmp_path, capsys):
    from autotrain_agent.loop import experiment_id_for
    from autotrain_agent.recipes import PlanOverrides, make_plan
    from autotrain_agent.state import Experiment
    from autotrain_agent.store import ExperimentStore

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n")
    plan = make_plan("improve code solving", PlanOverrides(dataset=str(rows), max_steps=8))
    store = ExperimentStore(tmp_path / "training_runs")
    store.save(Experiment(id=experiment_id_for(plan), goal=plan.goal, plan=plan), event="created")

    status = main(["improve code solving", "--dataset", str(rows), "--max-steps", "20", "--plan-only", "--output-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert status == 2
    assert "hyperparameters.max_steps: 8 -> 20" in err
    assert "autotrain-agent resume" in err
