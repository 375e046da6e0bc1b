"""`cgkit onboard` and `cgkit validate`, run in-process, asserting exit status and output."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus


@pytest.fixture(autouse=True)
def in_scratch(scratch_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scratch_root)
    monkeypatch.delenv("CGKIT_PROJECT_DIR", raising=False)


def test_onboard_writes_a_file_that_validates(scratch_root: Path, capsys) -> None:
    assert main(["onboard", "GM0518", "--env", "sandbox"]) == ExitStatus.OK
    text = (scratch_root / "environments/sandbox/municipalities/gm0518.yaml").read_text()
    assert "code: GM0518" in text and "domain: s-gravenhage-gm0518.sandbox.cgkit.test" in text
    assert main(["validate"]) == ExitStatus.OK


def test_onboard_refuses_an_existing_file_unless_forced(scratch_root: Path, capsys) -> None:
    assert main(["onboard", "GM0344", "--env", "sandbox", "--domain", "utrecht.nl"]) == ExitStatus.OK
    assert main(["onboard", "GM0344", "--env", "sandbox"]) == ExitStatus.FAILED
    assert "already exists" in capsys.readouterr().err
    assert main(["onboard", "GM0344", "--env", "sandbox", "--force"]) == ExitStatus.OK


def test_onboard_refuses_an_unknown_code(capsys) -> None:
    assert main(["onboard", "GM9999", "--env", "sandbox"]) == ExitStatus.FAILED
    assert "GM9999 is not in the CBS list" in capsys.readouterr().err


def test_validate_prints_every_problem_and_exits_1(scratch_root: Path, capsys) -> None:
    folder = scratch_root / "environments/sandbox/municipalities"
    (folder / "gm0344.yaml").write_text("code: GM0344\ndomian: x.nl\n")
    (folder / "gm0363.yaml").write_text("code: GM0363\ndomain: a.nl\nsize: XXL\n")
    assert main(["validate"]) == ExitStatus.FAILED
    lines = capsys.readouterr().err.splitlines()
    assert "environments/sandbox/municipalities/gm0344.yaml:2: domian: unknown field; did you mean 'domain'?" in lines
    assert any(line.startswith("environments/sandbox/municipalities/gm0363.yaml:3: size:") for line in lines)


def test_onboard_refuses_an_invalid_or_taken_domain(scratch_root: Path, capsys) -> None:
    assert main(["onboard", "GM0153", "--env", "sandbox", "--domain", "Bad Domain"]) == ExitStatus.FAILED
    assert "--domain 'Bad Domain' is not valid" in capsys.readouterr().err
    assert main(["onboard", "GM0344", "--env", "sandbox", "--domain", "utrecht.nl"]) == ExitStatus.OK
    assert main(["onboard", "GM0153", "--env", "sandbox", "--domain", "utrecht.nl"]) == ExitStatus.FAILED
    assert "already the domain of gm0344.yaml" in capsys.readouterr().err
    assert not (scratch_root / "environments/sandbox/municipalities/gm0153.yaml").exists()


def test_validate_names_replicas_the_size_cannot_hold(scratch_root: Path, capsys) -> None:
    folder = scratch_root / "environments/sandbox/municipalities"
    (folder / "gm0344.yaml").write_text("code: GM0344\ndomain: u.nl\nsize: S\napps:\n  openzaak: {replicas: 20}\n")
    assert main(["validate"]) == ExitStatus.FAILED
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("environments/sandbox/municipalities/gm0344.yaml: size: limits.cpu: the workloads need")
               and "choose a larger size than S" in line for line in lines), lines


def test_onboard_all_writes_every_missing_file_once_and_keeps_existing_ones(scratch_root: Path, capsys) -> None:
    folder = scratch_root / "environments/sandbox/municipalities"
    (folder / "gm0344.yaml").write_text("code: GM0344\ndomain: utrecht.nl\n")
    assert main(["onboard", "--all", "--env", "sandbox"]) == ExitStatus.OK
    assert "wrote 341 municipality file(s), kept 1 existing" in capsys.readouterr().out
    assert (folder / "gm0344.yaml").read_text() == "code: GM0344\ndomain: utrecht.nl\n"
    assert len(list(folder.glob("*.yaml"))) == 342
    assert main(["onboard", "--all", "--env", "sandbox"]) == ExitStatus.OK
    assert "wrote 0 municipality file(s), kept 342 existing" in capsys.readouterr().out


def test_onboard_all_by_province(scratch_root: Path, capsys) -> None:
    assert main(["onboard", "--all", "--env", "sandbox", "--province", "Flevoland"]) == ExitStatus.OK
    assert "wrote 6 municipality file(s), kept 0 existing" in capsys.readouterr().out
    assert main(["onboard", "--all", "--env", "sandbox", "--province", "Atlantis"]) == ExitStatus.FAILED
    assert "one of: Drenthe, Flevoland" in capsys.readouterr().err


def test_onboard_wants_either_a_code_or_all(capsys) -> None:
    assert main(["onboard", "--env", "sandbox"]) == ExitStatus.USAGE
    assert main(["onboard", "GM0344", "--all", "--env", "sandbox"]) == ExitStatus.USAGE
