"""``cgkit state migrate``: move an environment's stacks to another state backend (cgkit/migrate.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cgkit import engine, migrate, state
from cgkit.cli.console import err, out
from cgkit.cli.stack_cmds import Env
from cgkit.config import loader
from cgkit.errors import InvalidArgumentError
from cgkit.project import find_root
from cgkit.stackops import engine_settings
from cgkit.urls import redact

state_app = typer.Typer(help="The environments' Pulumi state: where it lives (the state: section).",
                        no_args_is_help=True)


@state_app.command("migrate")
def migrate_cmd(env: Env, to: Annotated[str, typer.Option(
        "--to", metavar="URL", help="The new backend: s3://<bucket>?..., file://<path>, azblob://, gs://.")]) -> None:
    """Copy every stack of an environment to another backend, verifying each checkpoint; the old
    backend is left as it was. Then point the environment file's state.backend at the new one."""
    try:
        state.check_backend(to)
    except ValueError as invalid:
        raise InvalidArgumentError(f"--to: {invalid}") from None
    root = find_root()
    environment = loader.load_environment(root, env)
    settings = engine_settings(root, environment, cluster=False)
    source, shown = redact(engine.backend_of(settings)), redact(to)
    moved = migrate.migrate(settings, env, to, say=lambda line: err.print(line, markup=False, highlight=False))
    out.print(f"{len(moved)} stack(s) of {env} copied from {source} to {shown}, each checkpoint verified; "
              f"{source} is unchanged.\nnext: set `state: {{backend: \"{shown}\"}}` in "
              f"environments/{env}/environment.yaml (until then cgkit keeps using {source})",
              markup=False, highlight=False, soft_wrap=True)
