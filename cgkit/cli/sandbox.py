"""``cgkit sandbox up|down|status|kubeconfig``: the local kwok cluster (see cgkit.sandbox).

Register in app.py with ``app.add_typer(sandbox.sandbox_app, name="sandbox")``.
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Annotated

import typer

from cgkit import engine, node, objectstore, sandbox, sandbox_images, state
from cgkit.node_manifests import NODE_IP
from cgkit.cli.console import err, out
from cgkit.config import loader
from cgkit.project import find_root
from cgkit.stackops import engine_settings

sandbox_app = typer.Typer(help="The local sandbox cluster (real control plane, a real node).",
                          no_args_is_help=True)


#: The bucket `sandbox up --object-store` creates for Pulumi state.
STATE_BUCKET = "cgkit-state"


def _say(msg: str) -> None:
    err.print(f"sandbox: {msg}", markup=False, highlight=False, soft_wrap=True)


@sandbox_app.command("up")
def up(
    fake_nodes: Annotated[int, typer.Option(help="kwok nodes beside the real one (over 2 zones), "
                                                 "for scale runs: their pods never run")] = 0,
    real_node: Annotated[bool, typer.Option(help="start the real node (kubelet, containerd, CNI, "
                                                 "kube-proxy, kube-router, CoreDNS; needs root)")] = True,
    volumes: Annotated[int, typer.Option(help="static PersistentVolumes per pool")] = 100,
    volume_size: Annotated[int, typer.Option(help="size of each volume, GiB")] = 50,
    object_store: Annotated[bool, typer.Option(help="also start the S3-compatible object store (versitygw) "
                                                    "on 127.0.0.1 (and the real node's bridge), with a bucket for Pulumi state")] = False,
    object_store_port: Annotated[int, typer.Option(min=1024, max=65535, help="its port")] = objectstore.DEFAULT_PORT,
) -> None:
    """Start the sandbox (or top up the running one, restarting what died). Idempotent."""
    start = time.monotonic()
    st = sandbox.up(fake_nodes=fake_nodes, real_node=real_node, pv_count=volumes,
                    pv_size_gi=volume_size, progress=_say)
    _say(f"ready in {time.monotonic() - start:.1f}s: {st.nodes_ready}/{st.nodes_total} nodes, "
         f"API {st.server}")
    out.print(f"export KUBECONFIG={st.kubeconfig}", markup=False, highlight=False, soft_wrap=True)
    if object_store:
        store = objectstore.ObjectStore(sandbox.paths().objectstore)
        # on the node's bridge too, so that `cgkit fleet --in-cluster` pods reach the state
        store.up(object_store_port, buckets=[STATE_BUCKET], also_on=(NODE_IP,) if real_node else ())
        _say(f"object store at {store.endpoint} (root key in {store.credentials}); as a state backend:\n"
             f"  state: {{backend: \"{store.backend_url(STATE_BUCKET)}\"}}")
        for key, value in sorted(store.client_env().items()):
            out.print(f"export {key}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)


@sandbox_app.command("images")
def images(
    rootfs_only: Annotated[bool, typer.Option(help="only the Debian root filesystem (needs no "
                                                   "toolchain; tools/setup runs it beside the toolchain build)")] = False,
    force: Annotated[bool, typer.Option(help="rebuild even when this key is built")] = False,
) -> None:
    """Build the sandbox's images from Debian packages (skipped when built); print the archive."""
    start = time.monotonic()
    path = sandbox_images.build_rootfs(_say) if rootfs_only else sandbox_images.build(_say, force=force)
    _say(f"done in {time.monotonic() - start:.1f}s")
    out.print(str(path), markup=False, highlight=False, soft_wrap=True)


@sandbox_app.command("down")
def down() -> None:
    """Delete the sandbox: its processes, its whole state dir, and the state of its stacks.

    The stacks of sandbox environments describe objects that die with the cluster, so their state
    is removed too (their config, with the generated secrets, is kept): a later `cgkit up` creates
    everything again instead of reporting "no changes" for a cluster that is gone. A sandbox of
    its own (CGKIT_SANDBOX_DIR, as tools/test uses) leaves the project's stacks alone.
    """
    start = time.monotonic()
    if not os.environ.get("CGKIT_SANDBOX_DIR"):
        _forget_sandbox_stacks()
    sandbox.down(progress=_say)
    _say(f"down in {time.monotonic() - start:.1f}s")


@sandbox_app.command("reap")
def reap(
    everything: Annotated[bool, typer.Option("--all", help="every other sandbox on this machine, not only "
                                                           "the test runs' (for CI's machine)")] = False,
) -> None:
    """Stop the sandboxes that earlier, killed test runs left on this machine (tools/test runs it first).

    Taken: sandboxes in a folder named test-sandbox or in a folder that is gone; with --all, every
    sandbox but this one ($CGKIT_SANDBOX_DIR or the checkout's).
    """
    stale = sandbox.reap(sandbox.paths().root, everything, progress=_say)
    _say(f"stopped {len(stale)} sandbox(es) left by earlier runs" if stale else "no sandbox left by an earlier run")


def _forget_sandbox_stacks() -> None:
    """Forget the state of every sandbox environment's stacks (on that environment's backend)."""
    root = find_root()
    for env in loader.environments(root):
        environment = loader.load_environment(root, env)
        if not environment.cluster.sandbox:
            continue
        settings = engine_settings(root, environment, cluster=False)
        local = state.local_path(engine.backend_of(settings))
        if local is not None and not local.is_dir():
            continue  # nothing was ever deployed there
        for name in engine.forget_stacks(settings, f"{env}."):
            _say(f"forgot the state of stack {name} (its config and secrets are kept)")


@sandbox_app.command("status")
def status() -> None:
    """Show whether the sandbox and its real node's daemons run; exit 1 when anything is down."""
    st = sandbox.status()
    out.print(f"running:    {st.running}", markup=False, highlight=False)
    out.print(f"kubeconfig: {st.kubeconfig if st.exists else '-'}", markup=False, highlight=False)
    out.print(f"server:     {st.server or '-'}", markup=False, highlight=False)
    out.print(f"nodes:      {st.nodes_ready}/{st.nodes_total} Ready", markup=False, highlight=False)
    for pid, name in st.processes:
        out.print(f"process:    {pid} {name}", markup=False, highlight=False)
    node_paths = sandbox.paths().node
    daemons = node.daemons(node_paths) if node_paths.root.exists() else {}
    for name, alive in daemons.items():
        out.print(f"node:       {name} {'running' if alive else 'NOT RUNNING (cgkit sandbox up restarts it)'}",
                  markup=False, highlight=False)
    store = objectstore.ObjectStore(sandbox.paths().objectstore)
    if store.root.exists():
        out.print(f"objects:    {store.endpoint if store.pid() else 'NOT RUNNING (cgkit sandbox up --object-store)'}",
                  markup=False, highlight=False)
    if not st.running or not all(daemons.values()):
        raise typer.Exit(1)


@sandbox_app.command("kubeconfig")
def kubeconfig() -> None:
    """Print the sandbox's kubeconfig path (exit 1 if there is no sandbox)."""
    out.print(str(sandbox.kubeconfig_path()), markup=False, highlight=False, soft_wrap=True)
