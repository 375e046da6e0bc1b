"""Commands on config files: ``onboard``, ``validate``, ``schema``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cgkit.cli.console import err, out
from cgkit import capacity
from cgkit.config import loader, schema
from cgkit.onboard import onboard as write_municipality
from cgkit.onboard import onboard_all
from cgkit.project import find_root

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Environment name (a folder in environments/).")]


def onboard(
    env: EnvOption,
    code: Annotated[str | None, typer.Argument(help="CBS municipality code, e.g. GM0344.")] = None,
    domain: Annotated[str | None, typer.Option(help="Domain the apps are served under.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    every: Annotated[bool, typer.Option("--all", help="Every CBS municipality that has no file yet "
                                        "(existing files are kept).")] = False,
    province: Annotated[str | None, typer.Option(help="With --all: only this province's municipalities.")] = None,
) -> None:
    """Write a minimal municipality file from the CBS list (one CODE, or --all)."""
    root = find_root()
    if every == (code is not None) or (province is not None and not every) or (every and (domain or force)):
        raise typer.BadParameter("give either one CODE (with --domain/--force if needed) or --all "
                                 "(with --province if needed)")
    if every:
        tally = onboard_all(root, env, province)
        out.print(f"wrote {len(tally.written)} municipality file(s), kept {len(tally.kept)} existing")
        return
    path = write_municipality(root, env, code, domain, force,
                              notify=lambda line: err.print(line, markup=False, highlight=False, soft_wrap=True))
    out.print(f"wrote {path.relative_to(root)}", markup=False, highlight=False)


def validate(
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="Environment(s); default: all.")] = None,
) -> None:
    """Check every config file; print every problem as file:line: field: message; exit 1 if any."""
    root = find_root()
    names = env or loader.environments(root)
    if not names:
        err.print(f"nothing to validate: no environments/<env>/environment.yaml under {root}", markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    issues = [issue for name in names
              for issue in loader.check_environment(root, name, extra=lambda cfg: capacity.capacity_issues(root, cfg))]
    for issue in issues:
        err.print(issue.render(), markup=False, highlight=False, soft_wrap=True)
    files = sum(len(loader.municipality_codes(root, name)) + 1 for name in names)
    if issues:
        err.print(f"{len(issues)} problem(s) in {files} file(s)", style="red")
        raise typer.Exit(1)
    out.print(f"{files} file(s) valid in {', '.join(names)}")


def write_schema(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder; default environments/schema.")] = None,
) -> None:
    """Write the JSON Schemas of the environment and municipality files (for editors)."""
    root = find_root()
    for path in schema.write_schemas(out_dir or root / loader.ENVIRONMENTS / "schema", root, outside_ok=out_dir is not None):
        out.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)

