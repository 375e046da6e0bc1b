"""Where every command prints: the two rich consoles ``out`` (stdout) and ``err`` (stderr), and
`engine_line` for the engine's own output, streamed as it comes."""

import sys

from rich.console import Console

out = Console()
err = Console(stderr=True)


def engine_line(line: str) -> None:
    """Write one line of the engine's output to stdout as is (no markup, no wrapping) and flush it,
    so a long update shows its progress while it runs."""
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()
