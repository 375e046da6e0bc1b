"""The two rich consoles every command prints through: ``out`` (stdout) and ``err`` (stderr)."""

from rich.console import Console

out = Console()
err = Console(stderr=True)
