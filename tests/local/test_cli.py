from __future__ import annotations

import json
from pathlib import Path

import pytest

from filepipe.cli.main import build_parser, main

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_the_local_group_has_its_commands() -> None:
    parser = build_parser()
    for command in ("up", "down", "env", "demo"):
        args = parser.parse_args(["local", command])
        assert callable(args.command)


def test_env_and_down_without_a_running_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "env", "--state-dir", str(tmp_path)]) == 1
    assert main(["local", "down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing running" in capsys.readouterr().out


def test_a_stale_endpoint_file_is_cleaned_up(tmp_path: Path) -> None:
    (tmp_path / "endpoint.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:1", "pid": 2**22 + 1}))
    assert main(["local", "env", "--state-dir", str(tmp_path)]) == 1
    assert not (tmp_path / "endpoint.json").exists()


@pytest.mark.e2e
def test_the_demo_passes_from_the_project_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "demo", "--project-dir", str(PROJECT_DIR), "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "All checks passed" in out
    assert "processed/" in out
    assert (tmp_path / "outputs.json").is_file()
    assert "ALARM" in (tmp_path / "alerts.log").read_text()


def test_an_unknown_stack_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["local", "demo", "--project-dir", str(PROJECT_DIR), "--stack", "nope", "--state-dir", str(tmp_path)]
    )
    assert code == 1
    assert "cannot start" in capsys.readouterr().out
