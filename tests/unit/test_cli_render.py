"""`cgkit render` prints a tenant's objects as YAML with Secret values redacted; `cgkit wiring` the table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus
from cgkit.cli.render_cmds import REDACTED, redacted
from components.catalog import load_catalog
from components.wiring import wiring_table


@pytest.fixture(autouse=True)
def in_scratch(scratch_root: Path, project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(project_root / "environments/sandbox/municipalities/gm0344.yaml",
                scratch_root / "environments/sandbox/municipalities/gm0344.yaml")
    monkeypatch.chdir(scratch_root)
    monkeypatch.delenv("CGKIT_PROJECT_DIR", raising=False)


def test_render_prints_every_object_with_secret_values_redacted(capsys) -> None:
    assert main(["render", "--env", "sandbox", "GM0344"]) == ExitStatus.OK
    text = capsys.readouterr().out
    objects = list(yaml.safe_load_all(text))
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Job", "Secret", "ConfigMap", "NetworkPolicy"} <= kinds
    assert list(objects[0])[:3] == ["apiVersion", "kind", "metadata"]
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets and all(set(o["stringData"].values()) == {REDACTED} for o in secrets)
    assert "openzaak-setup" in {o["metadata"]["name"] for o in secrets}
    assert "fake-" not in text  # the mocked secret values never reach the output


def test_render_of_an_unknown_code_fails(capsys) -> None:
    assert main(["render", "--env", "sandbox", "GM9999"]) == ExitStatus.FAILED


def test_redaction_keeps_the_keys_and_leaves_other_kinds_alone() -> None:
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"A": "YQ=="}}
    assert redacted(secret)["data"] == {"A": REDACTED}
    config = {"metadata": {"name": "x"}, "kind": "ConfigMap", "data": {"A": "a"}}
    assert redacted(config) == config and list(redacted(config)) == ["kind", "metadata", "data"]


def test_wiring_prints_the_catalogs_table(capsys) -> None:
    assert main(["wiring"]) == ExitStatus.OK
    assert capsys.readouterr().out == wiring_table(load_catalog())
