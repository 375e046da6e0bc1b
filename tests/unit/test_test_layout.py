"""The test tree itself: pytest's default (prepend) import mode imports every test module by its
basename, so two test files of one name in different folders stop the whole run at collection
("import file mismatch"); this catches it in the folder that is run most, before CI does."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique_across_the_tree():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
