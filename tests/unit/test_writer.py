"""The one path of every file cgkit writes (cgkit/writer.py): regular files, no link followed, atomic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgkit.errors import FileExistsCgkitError
from cgkit.writer import WriteError, write_text


def test_a_file_is_written_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    write_text(tmp_path, target, "one")
    write_text(tmp_path, target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_a_link_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.write_text("keep")
    (tmp_path / "schema.json").symlink_to(victim)
    with pytest.raises(WriteError, match="is a symbolic link"):
        write_text(tmp_path, tmp_path / "schema.json", "overwritten")
    assert victim.read_text() == "keep"


def test_a_linked_folder_is_refused_inside_and_outside_the_project(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    root.mkdir(), elsewhere.mkdir()
    (root / "out").symlink_to(elsewhere)
    for outside_ok in (False, True):
        with pytest.raises(WriteError, match="through a symbolic link"):
            write_text(root, root / "out" / "report.md", "x", outside_ok=outside_ok)
    assert not list(elsewhere.iterdir())


def test_outside_the_project_only_when_asked_and_without_links(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    with pytest.raises(WriteError, match="outside the project"):
        write_text(root, tmp_path / "report.md", "x")
    assert write_text(root, tmp_path / "out" / "report.md", "x", outside_ok=True).read_text() == "x"


def test_a_failed_check_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "m.yaml"
    target.write_text("old")

    def refuse(_tmp: Path) -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        write_text(tmp_path, target, "new", check=refuse)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["m.yaml"]


def test_exclusive_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("theirs")
    with pytest.raises(FileExistsCgkitError):
        write_text(tmp_path, tmp_path / "m.yaml", "mine", exclusive=True)
    assert (tmp_path / "m.yaml").read_text() == "theirs"


def test_a_fifo_is_no_file_to_write(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "report.md")
    with pytest.raises(WriteError, match="not a regular file"):
        write_text(tmp_path, tmp_path / "report.md", "x")
