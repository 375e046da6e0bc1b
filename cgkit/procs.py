"""The host's processes, read from /proc: one scan shared by the sandbox and its real node."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(pid, argv)`` of every live process but this one; ``argv`` as bytes, as the kernel
    keeps it (``/proc/<pid>/cmdline``). Processes that end while being read are skipped."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0]:
            yield int(entry.name), argv


def name(argv: list[bytes]) -> str:
    """The program name of a command line (the file name of ``argv[0]``)."""
    return Path(argv[0].decode(errors="replace")).name
