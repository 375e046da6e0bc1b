"""What the engine runs with: state backend, passphrase, toolchain PATH; and when it refuses to run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cgkit import engine, toolchain
from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL", "PULUMI_HOME"):
        monkeypatch.delenv(key, raising=False)


def test_defaults_are_a_local_backend_and_a_private_generated_passphrase(tmp_path: Path) -> None:
    env = engine.engine_env(engine.EngineSettings(root=tmp_path, kubeconfig=tmp_path / "kc"))
    assert env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / '.cgkit' / 'state'}"
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".cgkit").stat().st_mode) == 0o700
    assert len(passphrase.read_text()) >= 40
    assert env["PATH"].split(":")[0] == str(toolchain.bin_dir())
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["KUBECONFIG"] == str(tmp_path / "kc")


def test_the_passphrase_is_generated_once(tmp_path: Path) -> None:
    first = engine.passphrase_file(tmp_path).read_text()
    assert engine.passphrase_file(tmp_path).read_text() == first


def test_a_passphrase_in_the_environment_wins_and_no_file_is_made(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "from-the-environment")
    env = engine.engine_env(engine.EngineSettings(root=tmp_path))
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "from-the-environment"
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    assert not (tmp_path / ".cgkit" / "passphrase").exists()


@pytest.mark.parametrize("verb", ["up", "destroy"])
def test_changing_commands_refuse_without_a_terminal_or_yes(verb, scratch_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch_root)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["onboard", "GM0344", "--env", "sandbox"]) == ExitStatus.OK
    assert main([verb, "--env", "sandbox", "GM0344"]) == ExitStatus.FAILED
    assert "pass --yes" in capsys.readouterr().err
    assert not (scratch_root / ".cgkit").exists(), "nothing may be touched before refusing"


@pytest.mark.parametrize("verb", ["up", "destroy"])
def test_a_bad_target_is_named_before_the_confirmation_question(verb, scratch_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch_root)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main([verb, "--env", "sandbox", "GM9999"]) == ExitStatus.FAILED
    err = capsys.readouterr().err
    assert "TARGET 'GM9999' is neither 'platform' nor a municipality" in err and "--yes" not in err


def test_env_prints_exports_but_never_the_passphrase(scratch_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(scratch_root)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "s3cret-value")
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(scratch_root / "sb"))
    (scratch_root / "sb").mkdir()
    (scratch_root / "sb" / "kubeconfig").write_text("")
    assert main(["env", "--env", "sandbox"]) == ExitStatus.OK
    printed = capsys.readouterr().out
    assert "export PULUMI_BACKEND_URL=" in printed and "export KUBECONFIG=" in printed
    assert "s3cret-value" not in printed
