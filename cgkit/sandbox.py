"""The local sandbox cluster: the real control plane started with kwokctl, and a real node.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by
tools/build-toolchain) run as local processes (``kwokctl --runtime binary``); etcd and the
controllers listen on 127.0.0.1 only. By default the sandbox has one *real* node (cgkit.node:
kubelet, containerd, CNI bridge, kube-proxy, kube-router, CoreDNS) on which every pod really runs;
the API server then also listens on the node's bridge address, so that pods (CoreDNS) reach it
through the ``kubernetes`` Service. ``fake_nodes`` adds kwok Nodes (over 2 zones) for scale runs,
where kwok moves Pods to Running/Ready without running them; ``real_node=False`` gives the old
fake-only sandbox (no root needed). The sandbox also adds what the product's deploys wait for: a
pool of static PersistentVolumes (storage class ``cgkit-sandbox``; ``local`` volumes on the real
node, scrubbed when released) and kwok Stages that give Ingresses and LoadBalancer Services a
``status.loadBalancer.ingress`` (there is no ingress controller). The API server runs with
Node,RBAC authorization, the default admission plugins (Pod Security Admission, NodeRestriction),
an audit log, Secrets encrypted at rest (secretbox, key generated once per sandbox) and anonymous
auth off.

State lives in ``<repo>/.cgkit/sandbox/`` (gitignored; override with $CGKIT_SANDBOX_DIR), mode 0700:
    kwok/                 KWOK_WORKDIR: kwokctl's cluster dir (pki, etcd data, logs, audit.log)
    kwokctl.yaml          the generated kwokctl config (binaries, flags, Stages)
    audit-policy.yaml     the audit Policy
    encryption-config.yaml  the EncryptionConfiguration with the key (0600)
    kubeconfig            admin kubeconfig of the sandbox (0600)
    node/                 the real node (cgkit.node.NodePaths)
    objectstore/          the S3-compatible object store, when started (cgkit.objectstore)
    volumes/pv-NNN        the real node's volume pool
``down`` stops the real node (leaving nothing on the host, or raising), deletes the cluster, ends
any of its processes left, and removes the whole state dir. Volumes of the pool are kept while the
sandbox lives (reclaim policy Retain): a PV whose claim was deleted turns Released, and the next
``up`` empties its directory before it returns it to the pool, so no tenant's data reaches another.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cgkit import node, procs
from cgkit import sandbox_manifests as manifests
from cgkit import toolchain
from cgkit.errors import CgkitError

CLUSTER_NAME = "cgkit"
REQUIRED_TOOLS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd",
                  "kwok", "kwokctl")
# kwokctl links each binary into <cluster>/bin under these names and starts them from there
PROCESS_NAMES = frozenset(REQUIRED_TOOLS) | {"kwok-controller"}
#: the processes kwokctl runs for a live cluster; up restarts the control plane when one is gone
CONTROL_PLANE = frozenset({"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                           "kwok-controller"})
Progress = Callable[[str], None]


class SandboxError(CgkitError):
    """The sandbox could not be started, inspected or stopped. Has ``hint``: what to do next."""

    reference = "sandbox"


@dataclass(frozen=True)
class SandboxPaths:
    """Where the sandbox keeps its state (see the module doc)."""

    root: Path

    @property
    def kwok_workdir(self) -> Path:
        return self.root / "kwok"

    @property
    def objectstore(self) -> Path:
        """The folder of the sandbox's object store (cgkit.objectstore), when it is started."""
        return self.root / "objectstore"

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / CLUSTER_NAME

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def kwokctl_config(self) -> Path:
        return self.root / "kwokctl.yaml"

    @property
    def audit_policy(self) -> Path:
        return self.root / "audit-policy.yaml"

    @property
    def encryption_config(self) -> Path:
        return self.root / "encryption-config.yaml"

    @property
    def audit_log(self) -> Path:
        return self.cluster_dir / "logs" / "audit.log"

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def node(self) -> node.NodePaths:
        return node.NodePaths(self.root / "node")

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"


def paths(root: Path | None = None) -> SandboxPaths:
    """Return the sandbox paths: $CGKIT_SANDBOX_DIR if set, else ``<root>/.cgkit/sandbox`` where
    ``root`` is the project root (default: this checkout)."""
    env = os.environ.get("CGKIT_SANDBOX_DIR")
    if env:
        return SandboxPaths(Path(env).resolve())
    return SandboxPaths((root or toolchain.REPO_ROOT).resolve() / ".cgkit" / "sandbox")


@dataclass(frozen=True)
class SandboxStatus:
    """What ``status()`` finds.

    Attributes:
        exists: kwokctl's cluster dir is there. running: the API server answers (lists Nodes).
        kubeconfig: the admin kubeconfig path (exists only while the sandbox exists).
        server: the API server URL from the kubeconfig, or None.
        nodes_ready / nodes_total: Node counts (0 when not running).
        processes: (pid, command name) of the sandbox's processes found in /proc.
    """

    exists: bool
    running: bool
    kubeconfig: Path
    server: str | None = None
    nodes_ready: int = 0
    nodes_total: int = 0
    processes: list[tuple[int, str]] = field(default_factory=list)


def _bins() -> dict[str, Path]:
    """Return the required tools' paths; raise SandboxError naming any missing or mismatched."""
    bad = [s for s in toolchain.doctor() if s.name in REQUIRED_TOOLS and not s.ok]
    if bad:
        names = ", ".join(f"{s.name} (found {s.found or 'nothing'}, want {s.expected})" for s in bad)
        raise SandboxError(f"toolchain incomplete: {names}", hint="run `cgkit toolchain build`")
    bindir = toolchain.bin_dir()
    return {name: bindir / name for name in REQUIRED_TOOLS}


def _kwokctl(p: SandboxPaths, *args: str, timeout_s: float = 600) -> str:
    """Run kwokctl with KWOK_WORKDIR under the state dir; return stdout; SandboxError on failure."""
    cmd = [str(toolchain.bin_dir() / "kwokctl"), *args]
    env = {**os.environ, "KWOK_WORKDIR": str(p.kwok_workdir)}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`kwokctl {' '.join(args)}` timed out after {timeout_s:.0f}s",
                           hint=f"see the logs in {p.cluster_dir / 'logs'}") from exc
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-25:])
        raise SandboxError(f"`kwokctl {' '.join(args)}` failed (exit {out.returncode}):\n{tail}",
                           hint=f"see the logs in {p.cluster_dir / 'logs'}")
    return out.stdout


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (created so, never world-readable in between)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _write_config(p: SandboxPaths, bins: dict[str, Path], real_node: bool) -> None:
    """Write audit policy, encryption config (key made once, kept if present) and kwokctl config."""
    p.root.mkdir(parents=True, exist_ok=True)
    os.chmod(p.root, 0o700)
    _write_private(p.audit_policy, yaml.safe_dump(manifests.audit_policy(), sort_keys=False))
    if not p.encryption_config.exists():
        key = secrets.token_bytes(32)
        _write_private(p.encryption_config,
                       yaml.safe_dump(manifests.encryption_config(key), sort_keys=False))
    stages_dir = toolchain.toolchain_dir() / "share" / "kwok-stages"
    default_stages = sorted(stages_dir.glob("*.yaml"))
    if not default_stages:
        raise SandboxError(f"kwok default stages missing in {stages_dir}",
                           hint="run `cgkit toolchain build` (the kwok step copies them)")
    docs = [yaml.safe_dump(manifests.kwokctl_config(bins, p.audit_policy, p.encryption_config,
                                                    p.pki if real_node else None), sort_keys=False)]
    docs += [f.read_text() for f in default_stages]
    docs += [yaml.safe_dump(s, sort_keys=False) for s in manifests.loadbalancer_stages()]
    _write_private(p.kwokctl_config, "\n---\n".join(d.strip() for d in docs) + "\n")


def _make_private(p: SandboxPaths) -> None:
    """Restrict what kwokctl wrote with default modes: private keys and kubeconfigs to 0600."""
    for f in [p.kubeconfig, *p.cluster_dir.glob("pki/*.key"), *p.cluster_dir.glob("*.yaml")]:
        os.chmod(f, 0o600)


def _api(p: SandboxPaths):
    """Return a kubernetes ApiClient for the sandbox kubeconfig."""
    from kubernetes import config as kconfig  # imported late: slow, and only needed here

    return kconfig.new_client_from_config(config_file=str(p.kubeconfig))


def processes(root: Path | None = None) -> list[tuple[int, str]]:
    """Return (pid, name) of live toolchain processes (etcd, kube-*, kwok, kwokctl, kubectl)
    whose command line mentions the sandbox state dir: the sandbox's own processes."""
    return _processes_of(paths(root))


def _processes_of(p: SandboxPaths) -> list[tuple[int, str]]:
    marker = str(p.root).encode()
    return sorted((pid, procs.name(argv)) for pid, argv in procs.command_lines()
                  if procs.name(argv) in PROCESS_NAMES and any(marker in a for a in argv))


#: A state dir named on a sandbox process's command line: the control plane names
#: ``<dir>/kwok/clusters/cgkit/...``, the real node's daemons and shims ``<dir>/node/...``.
_STATE_DIR_IN_ARG = re.compile(rb"(/[^\s=:,]+)/(?:kwok/clusters/" + CLUSTER_NAME.encode() + rb"|node)/")
_HOST_PROCESS_NAMES = PROCESS_NAMES | set(node.DAEMONS) | {"containerd-shim-runc-v2"}


def sandboxes_on_host() -> list[Path]:
    """State dirs of every sandbox with a live process on this machine, this checkout's included
    (found from the command lines of the control plane, the real node's daemons and their shims).

    A tools/test run that was killed (CI's time limit) leaves its sandbox running, and only one real
    node fits a machine; this is how the next run finds it, whatever folder it was started from.
    """
    found = set()
    for _pid, argv in procs.command_lines():
        if procs.name(argv) in _HOST_PROCESS_NAMES:
            found.update(Path(m.group(1).decode(errors="replace")) for a in argv
                         if (m := _STATE_DIR_IN_ARG.search(a)))
    return sorted(found)


def reap(keep: Path, everything: bool = False, progress: Progress = lambda _msg: None) -> list[Path]:
    """Stop the sandboxes on this machine that an earlier, killed run left behind; return their dirs.

    Taken: a sandbox whose state dir is named ``test-sandbox`` (tools/test's own) or no longer exists
    (its checkout is gone, so nothing in it can be kept), or, with ``everything``, any one but
    ``keep`` (CI's machine runs no sandbox of a person's). Another sandbox is left running; the
    real node's preflight then names it.

    Raises:
        SandboxError, NodeError: as ``down`` (what survived is named).
    """
    keep = keep.resolve()
    stale = [d for d in sandboxes_on_host()
             if d != keep and (everything or d.name == "test-sandbox" or not d.exists())]
    for state_dir in stale:
        progress(f"stopping the sandbox an earlier run left running in {state_dir}")
        down_at(SandboxPaths(state_dir), progress)
    return stale


def status(root: Path | None = None) -> SandboxStatus:
    """Inspect the sandbox of the project at ``root`` without changing it. Never raises for a
    stopped or absent sandbox."""
    p = paths(root)
    procs = processes(root)
    if not p.cluster_dir.exists() or not p.kubeconfig.exists():
        return SandboxStatus(p.cluster_dir.exists(), False, p.kubeconfig, processes=procs)
    from kubernetes import client

    try:
        api = _api(p)
        server = api.configuration.host
        node_list = client.CoreV1Api(api).list_node(_request_timeout=10).items
    except Exception:  # noqa: BLE001 - any failure here means "not running"
        return SandboxStatus(True, False, p.kubeconfig, processes=procs)
    ready = sum(1 for n in node_list for c in (n.status.conditions or [])
                if c.type == "Ready" and c.status == "True")
    return SandboxStatus(True, True, p.kubeconfig, server, ready, len(node_list), procs)


def _apply_nodes(p: SandboxPaths, count: int) -> None:
    """Create the fake Nodes that are missing (existing ones are left as they are)."""
    from kubernetes import client

    core = client.CoreV1Api(_api(p))
    have = {n.metadata.name for n in core.list_node().items}
    for fake in manifests.nodes(count):
        if fake["metadata"]["name"] not in have:
            core.create_node(fake)


def _apply_volumes(p: SandboxPaths, count: int, size_gi: int, real_node: bool, fake: bool) -> None:
    """Create missing pool PVs (the real node's, and the fake nodes' when there are any); return
    Released ones to the pool, a real one only after its directory was emptied."""
    from kubernetes import client

    core = client.CoreV1Api(_api(p))
    have = {v.metadata.name: v for v in core.list_persistent_volume(
        label_selector="app.kubernetes.io/managed-by=cgkit-sandbox").items}
    pools = ([manifests.persistent_volumes(count, size_gi, p.volumes)] if real_node else []) + \
        ([manifests.persistent_volumes(count, size_gi)] if fake else [])
    for pv in (pv for pool in pools for pv in pool):
        name = pv["metadata"]["name"]
        local = pv["spec"].get("local")
        if local:
            Path(local["path"]).mkdir(parents=True, exist_ok=True)
        if name not in have:
            core.create_persistent_volume(pv)
        elif have[name].status.phase == "Released":
            if local:
                scrub_volume(Path(local["path"]))
            core.patch_persistent_volume(name, {"spec": {"claimRef": None}})


def scrub_volume(directory: Path) -> None:
    """Empty a released volume's directory (its files belonged to a tenant that is gone)."""
    shutil.rmtree(directory)
    directory.mkdir(mode=0o755)


def _release_node_leases(p: SandboxPaths, timeout_s: float) -> None:
    """Delete the Node Leases after a restart and wait until kwok holds new ones.

    A restarted kwok-controller has a new identity and leaves Pods on Nodes whose Lease the old
    instance holds alone until that Lease expires (200 s), and Pods stay Pending meanwhile;
    deleting them lets it take over sooner (measured: 15–50 s). SandboxError if it has not
    after ``timeout_s`` seconds.
    """
    from kubernetes import client

    coord = client.CoordinationV1Api(_api(p))
    key, value = manifests.KWOK_NODE_ANNOTATION
    names = {n.metadata.name for n in client.CoreV1Api(_api(p)).list_node().items
             if (n.metadata.annotations or {}).get(key) == value}  # the real node's kubelet renews its own
    for name in names:
        try:
            coord.delete_namespaced_lease(name, "kube-node-lease")
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = {lease.metadata.name for lease in coord.list_namespaced_lease("kube-node-lease").items}
        if names <= held:
            return
        time.sleep(1)
    raise SandboxError(f"kwok did not take over the nodes within {timeout_s:.0f}s after restart",
                       hint=f"check kwok-controller's log in {p.cluster_dir / 'logs'}, "
                            "or recreate: `cgkit sandbox down` then `up`")


def _wait_nodes_ready(root: Path | None, count: int, timeout_s: float) -> None:
    """Wait until at least ``count`` Nodes are Ready; SandboxError after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = status(root)
        if st.running and st.nodes_ready >= count:
            return
        time.sleep(1)
    raise SandboxError(f"only {status(root).nodes_ready} of {count} nodes Ready after {timeout_s:.0f}s",
                       hint=f"check kwok-controller's log in {paths(root).cluster_dir / 'logs'}")


def up(
    fake_nodes: int = 0,
    real_node: bool = True,
    pv_count: int = 100,
    pv_size_gi: int = 50,
    timeout_s: float = 300,
    progress: Progress = lambda _msg: None,
    root: Path | None = None,
) -> SandboxStatus:
    """Start the sandbox, or make sure the running one has its nodes and volume pool. Idempotent,
    and it heals: when a control-plane process died it restarts the control plane (the cluster's
    objects live on in etcd's data dir), and it restarts whatever daemon of the real node died.

    Args:
        fake_nodes: kwok Nodes (over 2 zones) beside the real node, for scale runs.
        real_node: start the real node (needs root; see cgkit.node). pv_count, pv_size_gi: each
            volume pool (GiB). timeout_s: seconds to wait for the control plane, again for the
            nodes. progress: called with one line per step. root: project root (default: this
            checkout); state in paths(root).

    Returns:
        The status once all nodes are Ready.

    Raises:
        SandboxError: tools missing (hint: build them), or kwokctl/the cluster failed (with the
            tail of kwokctl's output and where the logs are), or no node was asked for.
        NodeError: the real node cannot start (what the host lacks) or did not become Ready.
    """
    if fake_nodes < 0 or pv_count < 0 or pv_size_gi < 1:
        raise SandboxError(f"--fake-nodes and --volumes cannot be negative and --volume-size must be at least 1 "
                           f"(got {fake_nodes}, {pv_count}, {pv_size_gi})", hint="give whole numbers: 0 or more, size 1 or more")
    if fake_nodes == 0 and not real_node:
        raise SandboxError("the sandbox needs at least one node: --no-real-node and no fake nodes",
                           hint="drop --no-real-node, or give --fake-nodes 1 or more")
    p = paths(root)
    bins = _bins()
    if real_node:
        node.preflight(p.node)
        node.prepare_network()
    gone = sorted(CONTROL_PLANE - {name for _pid, name in processes(root)}) if p.cluster_dir.exists() else []
    if gone:
        progress(f"control-plane process(es) gone: {', '.join(gone)}; restarting the control plane "
                 "(etcd keeps the cluster's objects, the engine state is untouched)")
        try:
            _kwokctl(p, "stop", "cluster", "--name", CLUSTER_NAME)
        except SandboxError as exc:
            progress(f"kwokctl stop failed, ending the rest by hand: {exc}")
        _end_processes(p, progress)
    st = status(root)
    if not st.running:
        _write_config(p, bins, real_node)
        if p.cluster_dir.exists():
            progress("starting the stopped sandbox cluster")
            _kwokctl(p, "start", "cluster", "--name", CLUSTER_NAME, "--wait", f"{timeout_s:.0f}s")
            _release_node_leases(p, timeout_s)
        else:
            progress("creating the sandbox cluster (kwokctl, binary runtime)")
            _kwokctl(p, "create", "cluster", "--name", CLUSTER_NAME, "--config", str(p.kwokctl_config),
                     "--kubeconfig", str(p.kubeconfig), "--wait", f"{timeout_s:.0f}s",
                     timeout_s=timeout_s + 60)
        _make_private(p)
    if real_node:
        node.up(p.node, p.pki, p.kubeconfig, _api(p), progress, timeout_s)
    progress(f"ensuring {fake_nodes} fake nodes and {pv_count} x {pv_size_gi}Gi volumes per pool")
    if fake_nodes:
        _apply_nodes(p, fake_nodes)
    _apply_volumes(p, pv_count, pv_size_gi, real_node, fake=fake_nodes > 0)
    _wait_nodes_ready(root, fake_nodes + int(real_node), timeout_s)
    return status(root)


def down(progress: Progress = lambda _msg: None, root: Path | None = None) -> None:
    """Delete the sandbox: stop the real node (cgkit.node.down), kwokctl delete, end leftover
    processes of it, remove the state dir.

    Idempotent (nothing to do when absent). Raises SandboxError if processes survive SIGKILL,
    NodeError if the real node left something on the host (listed).
    """
    down_at(paths(root), progress)


def down_at(p: SandboxPaths, progress: Progress = lambda _msg: None) -> None:
    """``down`` of the sandbox whose state is in ``p`` (its object store too, when it runs)."""
    from cgkit import objectstore  # imported late: only a sandbox with a store needs it

    objectstore.ObjectStore(p.objectstore).down(remove_data=False)
    node.down(p.node, progress)
    if p.cluster_dir.exists() and (toolchain.bin_dir() / "kwokctl").exists():
        progress("deleting the sandbox cluster")
        try:
            _kwokctl(p, "delete", "cluster", "--name", CLUSTER_NAME, "--kubeconfig", str(p.kubeconfig))
        except SandboxError as exc:
            progress(f"kwokctl delete failed, cleaning up by hand: {exc}")
    _end_processes(p, progress)
    if p.root.exists():
        progress(f"removing {p.root}")
        shutil.rmtree(p.root)


def _end_processes(p: SandboxPaths, progress: Progress) -> None:
    """SIGTERM, then SIGKILL, the control-plane processes left; SandboxError if any survives."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = _processes_of(p)
        for pid, name in left:
            progress(f"ending leftover process {pid} ({name})")
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if left:
            time.sleep(2)
    if _processes_of(p):
        raise SandboxError(f"sandbox processes still running: {_processes_of(p)}")


def is_running(root: Path | None = None) -> bool:
    """Return True when the sandbox of the project at ``root`` answers on its API server."""
    return status(root).running


def kubeconfig_path(root: Path | None = None) -> Path:
    """Return the admin kubeconfig of the sandbox of the project at ``root`` (default: this
    checkout), or $CGKIT_SANDBOX_KUBECONFIG when set (lets a scratch copy of the project use the
    checkout's sandbox). Raises SandboxError if that file does not exist."""
    override = os.environ.get("CGKIT_SANDBOX_KUBECONFIG")
    if override:
        if not Path(override).is_file():
            raise SandboxError(f"$CGKIT_SANDBOX_KUBECONFIG names {override}, which does not exist",
                               hint="run `cgkit sandbox up`, or unset CGKIT_SANDBOX_KUBECONFIG")
        return Path(override)
    p = paths(root)
    if not p.kubeconfig.exists():
        raise SandboxError(f"no sandbox kubeconfig at {p.kubeconfig}", hint="run `cgkit sandbox up`")
    return p.kubeconfig
