"""``cgkit haven check``: the Haven checks against an environment's live cluster.

Exit statuses (`ExitStatus`): OK when no check failed (checks that are not verifiable from here do
not fail the run: they are listed with the reason), FAILED (1) when a mandatory check failed or the
cluster could not be asked (one ``error:`` line naming the cause).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cgkit.cli.exit_codes import ExitStatus
from cgkit.cli.policy import Format
from cgkit.config import loader
from cgkit.haven import report
from cgkit.haven.live import HavenCheckError, judge_environment
from cgkit.project import find_root
from cgkit.writer import WriteError, check_target, write_text


haven_app = typer.Typer(help="Haven, VNG's standard for Common Ground clusters: its checks, live.",
                        no_args_is_help=True)


@haven_app.command()
def check(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment whose cluster is checked (e.g. sandbox).")],
    output: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.TEXT,
    out: Annotated[Optional[Path], typer.Option(help="File to write the result to (default or '-': stdout).")] = None,
) -> None:
    """Run every Haven check cgkit can establish against the environment's cluster: each passed,
    failed, or not verifiable here with the reason."""
    root = find_root()
    if out is not None and str(out) in ("", "."):
        raise HavenCheckError(f"--out '{out}' names no file", hint="name a file, or '-' for standard output")
    if out is not None and str(out) != "-":
        check_target(root, out, outside_ok=True)  # a link or a folder is refused before the cluster is asked
    results, server = judge_environment(loader.load_environment(root, env), root)
    rendered = report.FORMATS[output.value](results, server)
    if out is None or str(out) == "-":
        typer.echo(rendered)
    else:
        try:
            write_text(root, out, rendered + "\n", outside_ok=True)
        except WriteError as e:
            raise HavenCheckError(f"{out}: cannot write the result: {e}",
                                  hint=e.hint or "name a writable file with --out") from None
        typer.echo(f"wrote {out}")
    raise typer.Exit(ExitStatus.FAILED if report.failed(results) else ExitStatus.OK)
