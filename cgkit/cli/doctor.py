"""``cgkit doctor`` and ``cgkit toolchain ...``: is the offline engine toolchain built, and build it.

Register in app.py with ``app.command("doctor")(doctor.doctor)`` and
``app.add_typer(doctor.toolchain_app, name="toolchain")``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer
from rich.table import Table

from cgkit import engine, sandbox, toolchain
from cgkit.urls import redact
from cgkit.cli.console import out
from cgkit.config import loader
from cgkit.errors import CgkitError, ToolchainError

toolchain_app = typer.Typer(help="Build or locate the offline engine toolchain (tools/).",
                            no_args_is_help=True)


def doctor() -> None:
    """Check every toolchain binary against tools/versions.toml; show backend and kubeconfig.

    Exits 1 naming each missing or mismatched tool.
    """
    pins = toolchain.load_pins()
    statuses = toolchain.doctor(pins)
    table = Table(title=f"toolchain {pins.key()}  ({toolchain.bin_dir(pins)})")
    for col in ("tool", "found", "expected", "ok"):
        table.add_column(col, no_wrap=True)
    table.add_column("path", overflow="fold")
    for s in statuses:
        mark = "[green]ok[/]" if s.ok else "[red]MISSING[/]" if s.found is None else "[red]WRONG[/]"
        table.add_row(s.name, s.found or "-", s.expected, mark, str(s.path))
    out.print(table)
    for line in _backends():
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.print(f"kubeconfig: {_kubeconfig()}", markup=False, highlight=False)
    bad = [s for s in statuses if not s.ok]
    if bad:
        names = ", ".join(f"{s.name} ({'missing' if s.found is None else 'has ' + s.found})"
                          for s in bad)
        raise ToolchainError(f"{len(bad)} tool(s) not as pinned: {names}",
                             hint="run `cgkit toolchain build` (or tools/build-toolchain)")


def _backends() -> list[str]:
    """One line per environment of the project: the state backend the engine will use for it
    ($PULUMI_BACKEND_URL, else the environment file's ``state.backend``, else the project's file backend),
    redacted (`cgkit.urls.redact`): a URL in the shell's environment may carry a password."""
    root = toolchain.REPO_ROOT
    lines = []
    for name in loader.environments(root):
        try:
            environment = loader.load_environment(root, name)
        except CgkitError as invalid:
            lines.append(f"backend ({name}): unknown, its environment file is invalid: {invalid}")
            continue
        settings = engine.EngineSettings(root=root, backend_url=environment.state.backend)
        how = ("$PULUMI_BACKEND_URL" if os.environ.get("PULUMI_BACKEND_URL")
               else "state.backend" if environment.state.backend else "default")
        lines.append(f"backend ({name}): {redact(engine.backend_of(settings))} ({how}); "
                     f"secrets: {redact(environment.state.secrets_provider)}")
    return lines


def _kubeconfig() -> str:
    """The kubeconfig in use: $KUBECONFIG, else the sandbox's when it exists, else ~/.kube/config."""
    if os.environ.get("KUBECONFIG"):
        return f"{os.environ['KUBECONFIG']} ($KUBECONFIG)"
    st = sandbox.status()
    if st.exists:
        return f"{st.kubeconfig} (sandbox, {'running' if st.running else 'not running'})"
    return "~/.kube/config (ambient; no sandbox)"


@toolchain_app.command("build")
def build(
    only: Annotated[str | None, typer.Option(help="comma-separated families to build")] = None,
    force: Annotated[bool, typer.Option(help="rebuild even if the versions match")] = False,
) -> None:
    """Build the pinned toolchain from the Go module proxy (skips what is already built)."""
    cmd = [sys.executable, str(toolchain.REPO_ROOT / "tools" / "build-toolchain")]
    cmd += (["--only", only] if only else []) + (["--force"] if force else [])
    code = subprocess.run(cmd).returncode
    if code:
        raise typer.Exit(code)


@toolchain_app.command("path")
def path() -> None:
    """Print the toolchain bin dir (for PATH)."""
    out.print(str(toolchain.bin_dir()), markup=False, highlight=False, soft_wrap=True)
