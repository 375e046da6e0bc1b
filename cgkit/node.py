"""The sandbox's real node: kubelet, containerd, CNI bridge, kube-proxy, kube-router and CoreDNS.

Pods scheduled here really run: containerd (Debian's 1.6, runc 1.1) starts them from the images
built by cgkit.sandbox_images, the CNI bridge gives them addresses, kube-proxy (iptables) gives
Services their VIPs, kube-router enforces NetworkPolicies (iptables + ipset) and CoreDNS answers
``<svc>.<ns>.svc.cluster.local``. The kubelet, kube-proxy and kube-router come from the pinned
toolchain build; the network layout is in cgkit.node_manifests. One real node per machine: its
bridge, iptables chains and cgroups are host-wide.

State lives in ``<sandbox>/node/`` (``NodePaths``): configs, logs, containerd's root and state,
the kubelet's root dir, the CNI IPAM store. ``down`` stops every process, removes every container,
mount, network namespace, veth, the bridge, the iptables chains and ipsets of kube-proxy and
kube-router, and the ``/cgkit`` cgroups, then ``leftovers()`` must be empty (else NodeError).

Needs root, Linux with bridge netfilter and overlayfs, and the Debian packages containerd, runc,
containernetworking-plugins, iptables, ipset, conntrack and openssl (tools/setup installs them).
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tomli_w
import yaml

from cgkit import node_manifests as nm
from cgkit import procs, sandbox_images, toolchain
from cgkit.errors import CgkitError

Progress = Callable[[str], None]
DAEMONS = ("containerd", "kubelet", "kube-proxy", "kube-router")
HOST_TOOLS = ("containerd", "ctr", "runc", "iptables", "iptables-save", "ipset", "ip", "openssl",
              "conntrack", "mount", "umount")
CNI_PLUGINS = Path("/usr/lib/cni")
CGROUP_ROOT = "cgkit"


class NodeError(CgkitError):
    """The real node could not be started, checked or removed; ``hint`` says what to do next."""

    reference = "sandbox"


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its state: ``<sandbox>/node`` (see the module doc)."""

    root: Path

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.kubelet / "kubeconfig"

    def config(self, daemon: str) -> Path:
        """The config file of ``daemon`` (containerd: TOML; kubelet, kube-proxy: YAML)."""
        return self.root / f"{daemon}.{'toml' if daemon == 'containerd' else 'yaml'}"

    def log(self, daemon: str) -> Path:
        return self.logs / f"{daemon}.log"

    def pidfile(self, daemon: str) -> Path:
        return self.logs / f"{daemon}.pid"


def _run(cmd: list[str], *, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run a host command; NodeError naming it and its output when it fails and ``check``."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f"`{' '.join(cmd[:3])}` timed out after {timeout:.0f}s") from exc
    if check and out.returncode != 0:
        raise NodeError(f"`{' '.join(cmd)}` failed (exit {out.returncode}): "
                        f"{(out.stderr or out.stdout).strip()[-800:]}")
    return out


def _other_nodes(p: NodePaths) -> list[str]:
    """Command lines of real-node kubelets on this host that belong to another sandbox dir."""
    ours, node_flag = str(p.root).encode(), f"--hostname-override={nm.NODE_NAME}".encode()
    return [next((a.decode() for a in argv if a.startswith(b"--root-dir=")), str(pid))
            for pid, argv in procs.command_lines()
            if procs.name(argv) == "kubelet" and node_flag in argv and not any(ours in a for a in argv)]


def preflight(p: NodePaths) -> None:
    """Check what the node needs of the host; NodeError listing everything missing, with the fix.

    One real node per machine (its bridge, ports and iptables chains are host-wide): a kubelet of
    another sandbox is an error naming its directory."""
    problems = []
    others = _other_nodes(p)
    if others:
        problems.append(f"another sandbox's real node runs on this machine ({', '.join(others)}); there can be "
                        "only one: run `cgkit sandbox down` with that sandbox's CGKIT_SANDBOX_DIR first")
    if os.geteuid() != 0:
        problems.append("cgkit must run as root to start a real node (kubelet, containerd, iptables)")
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        problems.append(f"host tools missing: {', '.join(missing)}")
    if not (CNI_PLUGINS / "bridge").is_file():
        problems.append(f"CNI plugins missing in {CNI_PLUGINS}")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        problems.append("the kernel has no bridge netfilter (br_netfilter)")
    tools = [t for t in ("kubelet", "kube-proxy", "kube-router") if not (toolchain.bin_dir() / t).is_file()]
    if tools:
        problems.append(f"toolchain binaries missing: {', '.join(tools)}")
    if problems:
        raise NodeError("the real node cannot start: " + "; ".join(problems),
                        hint="run tools/setup (installs the Debian packages and builds the toolchain)")


# ---- processes --------------------------------------------------------------------------------

def _command(p: NodePaths, daemon: str) -> list[str]:
    """The command line of ``daemon``; every one names a path under ``p.root`` (how ours are found)."""
    bindir = toolchain.bin_dir()
    return {
        "containerd": ["containerd", "--config", str(p.config("containerd"))],
        "kubelet": [str(bindir / "kubelet"), f"--config={p.config('kubelet')}",
                    f"--kubeconfig={p.kubelet_kubeconfig}", f"--root-dir={p.kubelet / 'root'}",
                    f"--cert-dir={p.kubelet / 'pki'}", f"--hostname-override={nm.NODE_NAME}",
                    f"--node-ip={nm.NODE_IP}",
                    "--node-labels=" + ",".join(f"{k}={v}" for k, v in nm.NODE_LABELS.items())],
        "kube-proxy": [str(bindir / "kube-proxy"), f"--config={p.config('kube-proxy')}"],
        "kube-router": [str(bindir / "kube-router"), *nm.kube_router_args(p.admin_kubeconfig)],
    }[daemon]


def _pid_alive(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def processes(p: NodePaths) -> list[tuple[int, str]]:
    """Return (pid, name) of every live process of the node: its daemons and containerd's shims
    (each names a path under the node's root on its command line). Container processes are
    children of the shims and go with them."""
    marker = str(p.root).encode()
    return sorted((pid, procs.name(argv)) for pid, argv in procs.command_lines() if any(marker in a for a in argv))


def _start(p: NodePaths, daemon: str) -> None:
    """Start ``daemon`` in its own session, logging to its log file, unless it already runs."""
    pidfile = p.pidfile(daemon)
    if _alive(p, daemon):
        return
    with p.log(daemon).open("a") as log:
        proc = subprocess.Popen(_command(p, daemon), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pidfile.write_text(str(proc.pid))


def _wait(what: str, ok: Callable[[], bool], timeout_s: float, log: Path | None = None) -> None:
    """Poll ``ok`` every second until true; NodeError naming ``what`` (and the log) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:]) if log and log.exists() else ""
    raise NodeError(f"{what} not ready after {timeout_s:.0f}s" + (f"; last lines of {log}:\n{tail}" if tail else ""),
                    hint=f"see the logs in {log.parent if log else 'the node dir'}")


# ---- setup steps ------------------------------------------------------------------------------

def _sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def prepare_network() -> None:
    """Enable forwarding and bridge netfilter; create the bridge with the node's address (idempotent).

    Done before the API server starts, which advertises the node address."""
    _sysctl("net.ipv4.ip_forward", "1")
    _sysctl("net.bridge.bridge-nf-call-iptables", "1")
    if _run(["ip", "link", "show", nm.BRIDGE], check=False).returncode != 0:
        _run(["ip", "link", "add", nm.BRIDGE, "type", "bridge"])
    have = _run(["ip", "-o", "-4", "addr", "show", "dev", nm.BRIDGE]).stdout
    if f" {nm.NODE_IP}/" not in have:
        _run(["ip", "addr", "add", f"{nm.NODE_IP}/24", "dev", nm.BRIDGE])
    _run(["ip", "link", "set", nm.BRIDGE, "up"])


def _kubelet_identity(p: NodePaths, pki: Path, server: str) -> None:
    """Give the kubelet its own client certificate, ``system:node:<name>`` in ``system:nodes``
    (what the Node authorizer and NodeRestriction expect), signed by the sandbox's CA."""
    d = p.kubelet / "pki"
    d.mkdir(parents=True, exist_ok=True)
    key, csr, crt = d / "client.key", d / "client.csr", d / "client.crt"
    if not crt.exists():
        _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", str(key), "-subj", f"/O=system:nodes/CN=system:node:{nm.NODE_NAME}",
              "-out", str(csr)])
        _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"),
              "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "365", "-out", str(crt)])
        os.chmod(key, 0o600)
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": server,
                                                     "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "kubelet", "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "kubelet", "context": {"cluster": "sandbox", "user": "kubelet"}}],
        "current-context": "kubelet",
    }
    _write(p.kubelet_kubeconfig, yaml.safe_dump(kubeconfig), private=True)


def _write(path: Path, text: str, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if private:
        os.chmod(path, 0o600)


def _write_configs(p: NodePaths, pki: Path, admin_kubeconfig: Path) -> None:
    """Write every config file of the node (idempotent)."""
    for d in (p.root, p.logs, p.containerd / "cni", p.kubelet / "root", p.kubelet / "pod-logs"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(p.root, 0o700)
    shutil.copyfile(admin_kubeconfig, p.admin_kubeconfig)
    os.chmod(p.admin_kubeconfig, 0o600)
    server = yaml.safe_load(admin_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    _kubelet_identity(p, pki, server)
    _write(p.config("containerd"), tomli_w.dumps(nm.containerd_config(
        p.containerd, p.socket, sandbox_images.ref("pause"))))
    _write(p.containerd / "cni" / "10-cgkit.conflist",
           json.dumps(nm.cni_conflist(p.containerd / "ipam"), indent=2))
    resolv = p.root / "resolv.conf"
    _write(resolv, "# the sandbox's pods resolve cluster names only (CoreDNS); no upstream\n")
    _write(p.config("kubelet"), yaml.safe_dump(nm.kubelet_config(
        pki / "ca.crt", p.socket, resolv, p.kubelet / "pod-logs")))
    _write(p.config("kube-proxy"), yaml.safe_dump(nm.kube_proxy_config(p.admin_kubeconfig)))
    for ctrl in _cgroup_controllers():
        (ctrl / CGROUP_ROOT).mkdir(exist_ok=True)


def _ctr(p: NodePaths, *args: str, timeout: float = 600) -> str:
    return _run(["ctr", "--address", str(p.socket), "--namespace", "k8s.io", *args], timeout=timeout).stdout


def _load_images(p: NodePaths, progress: Progress) -> None:
    """Import the sandbox's images into containerd unless every one is there already."""
    import_images(p, {sandbox_images.ref(name) for name in sandbox_images.IMAGES},
                  lambda: sandbox_images.build(progress), progress)


def import_images(p: NodePaths, refs: set[str], build: Callable[[], Path], progress: Progress = lambda _m: None) -> None:
    """Import the OCI archive ``build()`` returns into the node's containerd unless every image of
    ``refs`` is there already (the sandbox's images; the fleet's runner image, cgkit/runner_image.py).

    Raises:
        NodeError: an image of ``refs`` is still missing after the import. ImageBuildError: from ``build``.
    """
    if refs <= set(_ctr(p, "images", "ls", "--quiet").split()):
        return
    archive = build()
    progress(f"loading {', '.join(sorted(refs))} into the node's containerd")
    _ctr(p, "images", "import", str(archive))
    missing = refs - set(_ctr(p, "images", "ls", "--quiet").split())
    if missing:
        raise NodeError(f"images not loaded: {', '.join(sorted(missing))}",
                        hint=f"rebuild them: rm -r {archive.parent}")


def up(p: NodePaths, pki: Path, admin_kubeconfig: Path, api, progress: Progress = lambda _m: None,
       timeout_s: float = 300) -> None:
    """Start (or restart whatever died of) the real node, and wait until it is Ready with DNS.

    Args:
        p: the node's paths. pki: the sandbox CA dir (ca.crt, ca.key). admin_kubeconfig: the
            sandbox's admin kubeconfig (kube-proxy and kube-router use a copy). api: a kubernetes
            ApiClient for the sandbox. progress: one line per step. timeout_s: per wait.

    Raises:
        NodeError: the host lacks something (preflight), a daemon did not come up (with its
            log's tail), or the node or CoreDNS did not become Ready in time.
    """
    preflight(p)
    prepare_network()
    _write_configs(p, pki, admin_kubeconfig)
    progress("starting containerd")
    _start(p, "containerd")
    _wait("containerd", lambda: _containerd_answers(p), timeout_s, p.log("containerd"))
    _load_images(p, progress)
    progress(f"starting the kubelet of node {nm.NODE_NAME}")
    _start(p, "kubelet")
    from kubernetes import client

    core = client.CoreV1Api(api)
    _wait(f"node {nm.NODE_NAME}", lambda: _node_ready(core), timeout_s, p.log("kubelet"))
    # kube-proxy and kube-router look their node up when they start (kube-router exits when it is
    # not registered yet), so they start once the kubelet has registered it; the node counts as up
    # only when both answer their health checks: a node without its NetworkPolicy enforcer would
    # run tenants without isolation.
    progress("starting kube-proxy (Service VIPs) and kube-router (NetworkPolicies)")
    for daemon, health in HEALTH.items():
        _start(p, daemon)
        _wait(daemon, lambda url=health, d=daemon: _alive(p, d) and _healthy(url), timeout_s, p.log(daemon))
    _apply(admin_kubeconfig, nm.coredns_objects(sandbox_images.ref("coredns")))
    progress("waiting for the cluster DNS (CoreDNS)")
    _wait("CoreDNS", lambda: _dns_ready(core), timeout_s, p.log("kubelet"))


#: the daemons that start after the node registered, and their health endpoints (loopback)
HEALTH = {"kube-proxy": "http://127.0.0.1:10256/healthz",
          "kube-router": f"http://127.0.0.1:{nm.KUBE_ROUTER_HEALTH_PORT}/healthz"}


def _alive(p: NodePaths, daemon: str) -> bool:
    pidfile = p.pidfile(daemon)
    return pidfile.exists() and _pid_alive(int(pidfile.read_text()), str(p.root))


def _healthy(url: str) -> bool:
    """Whether ``url`` answers 200 within 2 s (never raises)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def daemons(p: NodePaths) -> dict[str, bool]:
    """Which of the node's daemons run (by pidfile and command line): name -> alive."""
    return {d: _alive(p, d) for d in DAEMONS}


def _node_ready(core) -> bool:
    try:
        node = core.read_node(nm.NODE_NAME, _request_timeout=5)
    except Exception:  # noqa: BLE001 - not registered yet
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _dns_ready(core) -> bool:
    pods = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns", _request_timeout=5).items
    return any(all(cs.ready for cs in (pod.status.container_statuses or [])) and pod.status.container_statuses
               for pod in pods)


def _apply(kubeconfig: Path, objects: list[dict]) -> None:
    """Server-side apply ``objects`` with the toolchain's kubectl (field manager cgkit-sandbox)."""
    _run([str(toolchain.bin_dir() / "kubectl"), "--kubeconfig", str(kubeconfig), "apply",
          "--server-side", "--force-conflicts", "--field-manager=cgkit-sandbox", "-f", "-"],
         input=yaml.safe_dump_all(objects))


# ---- teardown ---------------------------------------------------------------------------------

def _cgroup_controllers() -> list[Path]:
    """The mounted cgroup hierarchies (v1 controllers and the unified one, where mounted)."""
    base = Path("/sys/fs/cgroup")
    return [d for d in sorted(base.iterdir()) if d.is_dir() and (d / "cgroup.procs").exists()] \
        if base.is_dir() else []


def _our_mounts(p: NodePaths) -> list[str]:
    root = str(p.root) + "/"
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].encode().decode("unicode_escape")
        if target.startswith(root):
            out.append(target)
    return out


def _our_netns() -> list[str]:
    """Network namespaces (``ip netns``) whose interfaces hold an address of the pod range."""
    prefix = nm.POD_CIDR.rsplit(".", 1)[0] + "."
    names = [line.split()[0] for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines() if line]
    return [n for n in names
            if f"inet {prefix}" in _run(["ip", "-n", n, "-o", "-4", "addr"], check=False).stdout]


def _veths() -> list[str]:
    out = _run(["ip", "-o", "link", "show", "master", nm.BRIDGE], check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


_OURS = ("KUBE-", "CNI-", nm.BRIDGE)


def _iptables_leftovers() -> list[str]:
    """Rules and chains of the kubelet, kube-proxy, kube-router or the CNI bridge, IPv4 and IPv6."""
    found = []
    for save in ("iptables-save", "ip6tables-save"):
        rules = _run([save], check=False).stdout.splitlines()
        found += [f"{save[:-5]}: {r}" for r in rules if any(o in r for o in _OURS) and not r.startswith("#")]
    return found


def _sweep_iptables() -> None:
    """Remove every chain and rule of the node's agents from each table, IPv4 and IPv6, in one
    ``iptables-restore`` per family; other rules on the host stay as they were.

    The agents' own clean-ups are not enough: ``kube-proxy --cleanup`` leaves the kubelet's chains
    (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...) and ``kube-router --cleanup-config`` left its
    KUBE-NWPLCY-* chains here.
    """
    for family in ("iptables", "ip6tables"):
        saved = _run([f"{family}-save"], check=False).stdout.splitlines()
        kept = [line for line in saved if not any(o in line for o in _OURS)]
        if kept != saved:
            _run([f"{family}-restore"], input="\n".join(kept) + "\n")


def _ipsets() -> list[str]:
    names = _run(["ipset", "list", "-n"], check=False).stdout.split()
    return [n for n in names if n.startswith(("KUBE-", "kube-router", "inet6:KUBE-"))]


def leftovers(p: NodePaths) -> list[str]:
    """Return what of the node is still on the host, one line each (empty after a clean ``down``):
    processes, mounts under the node dir, pod network namespaces, the bridge and its veths,
    iptables rules of kube-proxy/kube-router/CNI, kube-router's ipsets, the ``/cgkit`` cgroups."""
    found = [f"process {pid} ({name})" for pid, name in processes(p)]
    found += [f"mount {m}" for m in _our_mounts(p)]
    found += [f"network namespace {n}" for n in _our_netns()]
    if _run(["ip", "link", "show", nm.BRIDGE], check=False).returncode == 0:
        found.append(f"bridge {nm.BRIDGE}")
    found += [f"veth {v}" for v in _veths()]
    found += [f"iptables rule: {r}" for r in _iptables_leftovers()]
    found += [f"ipset {s}" for s in _ipsets()]
    found += [f"cgroup {c / CGROUP_ROOT}" for c in _cgroup_controllers() if (c / CGROUP_ROOT).exists()]
    return found


def _kill_all(p: NodePaths, daemons: tuple[str, ...] | None = None) -> None:
    """SIGTERM then SIGKILL the node's processes (only ``daemons`` by name when given)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = [(pid, n) for pid, n in processes(p) if daemons is None or n in daemons]
        for pid, _name in procs:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while procs and time.monotonic() < deadline and any(
                _pid_alive(pid, str(p.root)) for pid, _ in procs):
            time.sleep(0.2)


def _containerd_answers(p: NodePaths) -> bool:
    """Whether the node's containerd runs and answers on its socket (never raises)."""
    if not _alive(p, "containerd"):
        return False
    try:
        return _run(["ctr", "--address", str(p.socket), "version"], check=False, timeout=10).returncode == 0
    except NodeError:
        return False


def _remove_containers(p: NodePaths) -> None:
    """Kill and delete every task and container of containerd's k8s.io namespace."""
    if not _containerd_answers(p):
        return
    for cid in _ctr(p, "tasks", "ls", "--quiet").split():
        _run(["ctr", "--address", str(p.socket), "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", cid], check=False)
    deadline = time.monotonic() + 20
    while _ctr(p, "tasks", "ls", "--quiet").split() and time.monotonic() < deadline:
        for cid in _ctr(p, "tasks", "ls", "--quiet").split():
            _run(["ctr", "--address", str(p.socket), "-n", "k8s.io", "tasks", "delete", "-f", cid], check=False)
        time.sleep(0.5)
    for cid in _ctr(p, "containers", "ls", "--quiet").split():
        _run(["ctr", "--address", str(p.socket), "-n", "k8s.io", "containers", "delete", cid], check=False)


def _rmdir_tree(d: Path) -> None:
    """Remove a cgroup directory bottom-up (cgroupfs allows only rmdir of empty groups)."""
    for sub in sorted((x for x in d.rglob("*") if x.is_dir()), key=lambda x: len(x.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        d.rmdir()
    except OSError:
        pass


def down(p: NodePaths, progress: Progress = lambda _m: None) -> None:
    """Stop the node and remove everything it put on the host; idempotent.

    Raises:
        NodeError: something is still there afterwards (``leftovers``), listed.
    """
    bindir = toolchain.bin_dir()
    progress(f"stopping node {nm.NODE_NAME}")
    _kill_all(p, ("kubelet", "kube-proxy", "kube-router"))
    _remove_containers(p)
    _kill_all(p)
    if (bindir / "kube-proxy").is_file():
        _run([str(bindir / "kube-proxy"), "--cleanup"], check=False)
    if (bindir / "kube-router").is_file():
        _run([str(bindir / "kube-router"), "--cleanup-config"], check=False)
    _sweep_iptables()
    for name in _ipsets():
        _run(["ipset", "destroy", name], check=False)
    for ns in _our_netns():
        _run(["ip", "netns", "delete", ns], check=False)
    for veth in _veths():
        _run(["ip", "link", "delete", veth], check=False)
    for target in sorted(_our_mounts(p), key=len, reverse=True):
        if _run(["umount", target], check=False).returncode != 0:
            _run(["umount", "-l", target], check=False)
    _run(["ip", "link", "delete", nm.BRIDGE], check=False)
    for ctrl in _cgroup_controllers():
        if (ctrl / CGROUP_ROOT).exists():
            _rmdir_tree(ctrl / CGROUP_ROOT)
    left = leftovers(p)
    if left:
        raise NodeError("the real node left things behind: " + "; ".join(left[:20]),
                        hint="remove them by hand, then run `cgkit sandbox down` again")
    if p.root.exists():
        shutil.rmtree(p.root)
