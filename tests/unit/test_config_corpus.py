"""Each bad config file in config_corpus/<case>/ produces exactly the messages in its expect.txt.

expect.txt holds one line per issue, file named by base name (the test adds the folder).
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from cgkit.config.loader import check_environment

CORPUS = Path(__file__).parent / "config_corpus"
TODAY = datetime.date(2026, 11, 29)
FOLDER = "environments/sandbox/municipalities/"


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir()))
def test_bad_file_gives_its_message(case: str, scratch_root: Path) -> None:
    target = scratch_root / FOLDER
    for source in (CORPUS / case).glob("*.yaml"):
        shutil.copy(source, target / source.name)
    expected = [FOLDER + line for line in (CORPUS / case / "expect.txt").read_text().splitlines() if line]

    issues = check_environment(scratch_root, "sandbox", today=TODAY)

    assert [issue.render() for issue in issues] == expected
