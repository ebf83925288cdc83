"""The export, publish and serve commands, and `run --export`, on saved experiments."""

import json

from autotrain_agent.cli import main
from autotrain_agent.store import ExperimentStore


def save(experiment, output_dir):
    ExperimentStore(output_dir / "training_runs").save(experiment, event="created", details={})


def test_run_export_flag_adds_export_stage(tmp_path, capsys):
    main(["improve code solving with SFT", "--export", "--plan-only", "--json", "--output-dir", str(tmp_path)])

    stages = json.loads(capsys.readouterr().out)["plan"]["stages"]
    assert stages[-2:] == ["export", "report"]


def test_publish_to_folder_writes_repositories(exported_experiment, tmp_path, capsys):
    save(exported_experiment, tmp_path)

    status = main([
        "publish", "exp", "--repo", "me/code-sft", "--gguf-repo", "me/code-sft-GGUF",
        "--to-folder", str(tmp_path / "hub"), "--output-dir", str(tmp_path),
    ])

    assert status == 0
    assert (tmp_path / "hub" / "me" / "code-sft-GGUF" / "model-q4_k_m.gguf").is_file()
    assert "license: apache-2.0" in (tmp_path / "hub" / "me" / "code-sft" / "README.md").read_text()
    assert f"me/code-sft: {tmp_path / 'hub' / 'me' / 'code-sft'}" in capsys.readouterr().out


def test_publish_unknown_experiment_names_known_ones(exported_experiment, tmp_path, capsys):
    save(exported_experiment, tmp_path)

    status = main(["publish", "nope", "--repo", "me/x", "--output-dir", str(tmp_path)])

    assert status == 2  # an unknown id is invalid input, as in status and resume
    assert "known experiments: exp" in capsys.readouterr().err


def test_serve_without_export_exits_2(exported_experiment, tmp_path, capsys):
    exported_experiment.export = None
    save(exported_experiment, tmp_path)

    status = main(["serve", "exp", "--output-dir", str(tmp_path)])

    assert status == 2
    assert "autotrain-agent export exp" in capsys.readouterr().err


def test_serve_command_binds_loopback(exported_experiment):
    from autotrain_agent.commands.serve import server_command

    command = server_command(exported_experiment, quant=None, port=8123)

    assert command[1:3] == ["-m", "llama_cpp.server"]
    assert command[command.index("--model") + 1].endswith("model-q4_k_m.gguf")
    assert command[command.index("--host") + 1] == "127.0.0.1"
