"""``cgkit sandbox up|down|status|kubeconfig``: the local kwok cluster (see cgkit.sandbox).

Register in app.py with ``app.add_typer(sandbox.sandbox_app, name="sandbox")``.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from cgkit import engine, sandbox
from cgkit.cli.console import err, out
from cgkit.config import loader
from cgkit.project import find_root

sandbox_app = typer.Typer(help="The local sandbox cluster (kwok, real control plane).",
                          no_args_is_help=True)


def _say(msg: str) -> None:
    err.print(f"sandbox: {msg}", markup=False, highlight=False)


@sandbox_app.command("up")
def up(
    nodes: Annotated[int, typer.Option(help="fake nodes, spread over 2 zones")] = 3,
    volumes: Annotated[int, typer.Option(help="static PersistentVolumes in the pool")] = 100,
    volume_size: Annotated[int, typer.Option(help="size of each volume, GiB")] = 50,
) -> None:
    """Start the sandbox (or top up the running one). Idempotent."""
    start = time.monotonic()
    st = sandbox.up(node_count=nodes, pv_count=volumes, pv_size_gi=volume_size, progress=_say)
    _say(f"ready in {time.monotonic() - start:.1f}s: {st.nodes_ready}/{st.nodes_total} nodes, "
         f"API {st.server}")
    out.print(f"export KUBECONFIG={st.kubeconfig}", markup=False, highlight=False, soft_wrap=True)


@sandbox_app.command("down")
def down() -> None:
    """Delete the sandbox: its processes, its whole state dir, and the state of its stacks.

    The stacks of sandbox environments describe objects that die with the cluster, so their state
    is removed too (their config, with the generated secrets, is kept): a later `cgkit up` creates
    everything again instead of reporting "no changes" for a cluster that is gone. A sandbox of
    its own (CGKIT_SANDBOX_DIR, as tools/test uses) leaves the project's stacks alone.
    """
    start = time.monotonic()
    sandbox.down(progress=_say)
    if not os.environ.get("CGKIT_SANDBOX_DIR"):
        _forget_sandbox_stacks()
    _say(f"down in {time.monotonic() - start:.1f}s")


def _forget_sandbox_stacks() -> None:
    root = find_root()
    sandbox_envs = [env for env in loader.environments(root) if loader.load_environment(root, env).cluster.sandbox]
    if not sandbox_envs or not (root / ".cgkit" / "state").is_dir():
        return
    settings = engine.EngineSettings(root=root)
    for env in sandbox_envs:
        for name in engine.forget_stacks(settings, f"{env}."):
            _say(f"forgot the state of stack {name} (its config and secrets are kept)")


@sandbox_app.command("status")
def status() -> None:
    """Show whether the sandbox runs; exit 1 when it does not."""
    st = sandbox.status()
    out.print(f"running:    {st.running}", markup=False, highlight=False)
    out.print(f"kubeconfig: {st.kubeconfig if st.exists else '-'}", markup=False, highlight=False)
    out.print(f"server:     {st.server or '-'}", markup=False, highlight=False)
    out.print(f"nodes:      {st.nodes_ready}/{st.nodes_total} Ready", markup=False, highlight=False)
    for pid, name in st.processes:
        out.print(f"process:    {pid} {name}", markup=False, highlight=False)
    if not st.running:
        raise typer.Exit(1)


@sandbox_app.command("kubeconfig")
def kubeconfig() -> None:
    """Print the sandbox's kubeconfig path (exit 1 if there is no sandbox)."""
    out.print(str(sandbox.kubeconfig_path()), markup=False, highlight=False, soft_wrap=True)
