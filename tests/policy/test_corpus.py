"""Realistic bad manifests (tests/policy/corpus/) are each caught by `cgkit policy check`.

Each file names its mistake and, in an ``# expect:`` line, the rules a reviewer would expect to fire.
They were written as chart mistakes seen in the wild, not from the rules; a file no rule catches is a
gap in the rules, to be fixed there.
"""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cgkit.cli.policy import policy_app

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.yaml"))
#: A sandbox municipality: Utrecht, images from Docker Hub only.
CONTEXT = ["--gemeente", "GM0344", "--domain", "utrecht.nl", "--registry", "docker.io"]


def expected_rules(path: Path) -> set[str]:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def test_the_corpus_has_at_least_fifteen_manifests():
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_bad_manifest_is_blocked_by_the_rules_a_reviewer_expects(path):
    result = CliRunner().invoke(policy_app, ["check", "--format", "json", *CONTEXT, str(path)])
    assert result.exit_code == 1, f"{path.name} was not blocked:\n{result.output}"
    flagged = {f["rule"] for f in json.loads(result.output)["findings"] if f["enforcement"] == "mandatory"}
    assert expected_rules(path) and expected_rules(path) <= flagged, f"{path.name}: flagged {sorted(flagged)}"


def test_checking_the_whole_corpus_at_once_names_every_file():
    result = CliRunner().invoke(policy_app, ["check", *CONTEXT, str(CORPUS[0].parent)])
    assert result.exit_code == 1
    assert {p.name for p in CORPUS} <= {Path(line.split(":")[0]).name for line in result.output.splitlines()}
