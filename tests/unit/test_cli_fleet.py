"""`cgkit fleet` in-process with a fake per-stack runner (no engine): exit status, confirmation,
summary, report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cgkit.cli import fleet_cmds
from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus
from cgkit.errors import EngineError
from cgkit.onboard import onboard

CODES = ["GM0344", "GM0363", "GM0518"]


@pytest.fixture(autouse=True)
def fleet_root(scratch_root: Path, with_waves, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CGKIT_PROJECT_DIR", str(scratch_root))
    for code in CODES:
        onboard(scratch_root, "sandbox", code)
    with_waves()
    return scratch_root


def fake_engine(monkeypatch: pytest.MonkeyPatch, failing: set[str]) -> list[tuple[str, str]]:
    """Replace the engine runner; return the (verb, code) calls it gets."""
    calls = []

    def stack_runner(verb, env, run_dir, options):
        def run(code: str) -> dict[str, int]:
            calls.append((verb, code))
            if code in failing:
                raise EngineError(f"{verb} of {env}.{code.lower()} failed: error: boom")
            return {"update": 1, "same": 3}
        return run

    monkeypatch.setattr(fleet_cmds, "stack_runner", stack_runner)
    monkeypatch.setattr(fleet_cmds, "check_environment", lambda *args: None)
    return calls


def last_report(root: Path) -> dict:
    (path,) = sorted((root / ".cgkit" / "runs").glob("*/report.json"), key=lambda p: p.stat().st_mtime)[-1:]
    return json.loads(path.read_text())


def test_a_failed_stack_fails_the_run_and_resume_reruns_only_it(fleet_root: Path, monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing={"GM0518"})
    assert main(["fleet", "up", "--env", "sandbox", "--yes"]) == ExitStatus.FAILED
    printed = capsys.readouterr()
    assert "1 failed" in printed.out and "report: " in printed.out
    assert "✗ sandbox.gm0518 failed after" in printed.err and "error: boom" in printed.err
    first = last_report(fleet_root)
    assert [w["name"] for w in first["waves"]] == ["canary", "rest"]
    assert {s["code"]: s["status"] for s in first["stacks"]} == {"GM0344": "succeeded", "GM0363": "succeeded",
                                                                  "GM0518": "failed"}
    calls.clear()
    fake_engine(monkeypatch, failing=set())
    assert main(["fleet", "up", "--env", "sandbox", "--yes", "--resume", first["run_id"]]) == ExitStatus.OK
    resumed = last_report(fleet_root)
    assert [s["code"] for s in resumed["stacks"]] == ["GM0518"] and resumed["resumed_from"] == first["run_id"]


def test_a_failing_canary_skips_the_rest(fleet_root: Path, monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing={"GM0344"})
    assert main(["fleet", "up", "--env", "sandbox", "--yes"]) == ExitStatus.FAILED
    assert calls == [("up", "GM0344")]
    assert last_report(fleet_root)["totals"] == {"succeeded": 0, "failed": 1, "skipped": 2, "not-started": 0}
    assert "later waves skipped" in capsys.readouterr().out


def test_up_without_a_terminal_needs_yes(monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing=set())
    assert main(["fleet", "up", "--env", "sandbox"]) == ExitStatus.FAILED
    assert "pass --yes" in capsys.readouterr().err and calls == []


def test_selection_by_code_wave_and_drift_listing(fleet_root: Path, monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing=set())
    assert main(["fleet", "refresh", "--env", "sandbox", "--wave", "rest", "--preview-only", "gm0363"]) == 0
    assert calls == [("refresh", "GM0363")]
    assert "drift in 1 stack(s)\n  sandbox.gm0363: +0 ~1 -0" in capsys.readouterr().out
    assert main(["fleet", "preview", "--env", "sandbox", "--wave", "pilot"]) == ExitStatus.FAILED
    assert "no wave 'pilot'" in capsys.readouterr().err


def test_shards_split_a_run_exactly_once_and_plan_shows_each_part(fleet_root: Path, monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing=set())
    parts = []
    for k in (1, 2):
        assert main(["fleet", "plan", "--env", "sandbox", "--shard", f"{k}/2"]) == ExitStatus.OK
        parts.append(capsys.readouterr().out.split())
        assert main(["fleet", "up", "--env", "sandbox", "--shard", f"{k}/2", "--yes"]) == ExitStatus.OK
        capsys.readouterr()
        assert last_report(fleet_root)["options"]["shard"] == f"{k}/2"
    assert sorted(parts[0] + parts[1]) == [f"sandbox.{c.lower()}" for c in CODES]
    assert sorted(code for _verb, code in calls) == CODES  # each stack once, over both runners
    assert [f"sandbox.{code.lower()}" for _verb, code in calls] == parts[0] + parts[1]


def test_plan_as_json_keeps_the_waves(capsys) -> None:
    assert main(["fleet", "plan", "--env", "sandbox", "--json"]) == ExitStatus.OK
    plan = json.loads(capsys.readouterr().out)
    assert plan["shard"] is None
    assert [(w["name"], w["stacks"]) for w in plan["waves"]] == [("canary", ["sandbox.gm0344"]),
                                                                ("rest", ["sandbox.gm0363", "sandbox.gm0518"])]


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1/65", "1", "a/b", "-1/2"])
def test_a_bad_shard_is_refused_before_anything_runs(shard: str, monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing=set())
    assert main(["fleet", "up", "--env", "sandbox", f"--shard={shard}", "--yes"]) == ExitStatus.FAILED
    assert f"--shard '{shard}': expected K/N with 1 <= K <= N <= 64" in capsys.readouterr().err
    assert calls == []


def test_an_empty_shard_runs_nothing_and_succeeds(monkeypatch, capsys) -> None:
    calls = fake_engine(monkeypatch, failing=set())
    empty = next(k for k in range(1, 65) if main(["fleet", "plan", "--env", "sandbox", "--shard", f"{k}/64"]) == 0
                 and not capsys.readouterr().out)
    assert main(["fleet", "up", "--env", "sandbox", "--shard", f"{empty}/64", "--yes"]) == ExitStatus.OK
    assert "holds none of the selected stacks: nothing to run" in capsys.readouterr().err and calls == []
