"""The offline engine toolchain: pinned versions, where the binaries live, the engine's env, a doctor.

The Pulumi CLI, its Python language host, the Kubernetes provider plugin and the Kubernetes
control-plane binaries cannot be downloaded here; ``tools/build-toolchain`` builds them from Go
modules at the versions pinned in ``tools/versions.toml``. This module is the one place that knows
the pins, the tool list and how each tool reports its version; the build script imports it.
It uses the standard library only, besides cgkit.errors (the build script runs before any venv
exists).

Layout (facts, see research/toolchain.md):
    <root>/<key>/bin/<tool>      built binaries, <root> = $CGKIT_TOOLCHAIN_DIR or
                                 ${XDG_CACHE_HOME:-~/.cache}/cgkit/toolchain; <key> = Pins.key()
    <root>/<key>/bin/.versions/  stamp files for tools that have no --version flag
    <root>/<key>/pulumi-home     default PULUMI_HOME (plugins cache, credentials of `pulumi login`)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from cgkit.errors import ToolchainError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PINS_FILE = REPO_ROOT / "tools" / "versions.toml"
STAMP_DIR = ".versions"
_VERSION_RE = re.compile(r"v?(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)")


@dataclass(frozen=True)
class Pins:
    """Pinned versions, as in tools/versions.toml (versions without a leading "v").

    Attributes:
        pulumi: Pulumi CLI release (pkg/v3, sdk/v3 tag), e.g. "3.274.1".
        language_python_sdk: sdk/v3 release whose python/cmd/pulumi-language-python is built.
        kubernetes_provider: pulumi-kubernetes provider release, e.g. "4.25.0" (= PyPI pin).
        kubernetes_provider_module: Go pseudo-version of provider/v4 at that release's commit.
        kubernetes: Kubernetes release for kube-apiserver & co. and kubectl, e.g. "1.35.4".
        etcd: etcd server release, e.g. "3.6.16".
        kwok: kwok/kwokctl release, e.g. "0.8.0".
        kube_router: kube-router release (the real node's NetworkPolicy enforcer), e.g. "2.1.0".
        coredns: CoreDNS release (the real node's cluster DNS), e.g. "1.15.0".
        versitygw: Versity S3 gateway release (the sandbox's object store), e.g. "1.8.0".
    """

    pulumi: str
    language_python_sdk: str
    kubernetes_provider: str
    kubernetes_provider_module: str
    kubernetes: str
    etcd: str
    kwok: str
    kube_router: str
    coredns: str
    versitygw: str

    def key(self) -> str:
        """Return a 12-hex-digit digest of all pins: the cache directory name for this set."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def load_pins(path: Path | str | None = None) -> Pins:
    """Read the pins from a versions.toml file.

    Args:
        path: the file; default ``tools/versions.toml`` of this checkout.

    Returns:
        The Pins, versions stripped of a leading "v" (except the Go pseudo-version).

    Raises:
        ToolchainError: the file is missing, is not TOML, or lacks a table or key.
    """
    path = Path(path) if path else DEFAULT_PINS_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ToolchainError(f"pins file {path} not found; run from a cgkit checkout") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ToolchainError(f"pins file {path} is not valid TOML: {exc}") from exc

    def get(table: str, key: str = "version") -> str:
        try:
            value = data[table][key]
        except KeyError as exc:
            raise ToolchainError(f"pins file {path}: missing [{table}] {key} = \"...\"") from exc
        if not isinstance(value, str) or not value.strip():
            raise ToolchainError(f"pins file {path}: [{table}] {key} must be a non-empty string")
        return value.strip()

    def bare(v: str) -> str:
        return v[1:] if v.startswith("v") else v

    return Pins(
        pulumi=bare(get("pulumi")),
        language_python_sdk=bare(get("pulumi-language-python", "sdk-version")),
        kubernetes_provider=bare(get("pulumi-kubernetes")),
        kubernetes_provider_module=get("pulumi-kubernetes", "module-version"),
        kubernetes=bare(get("kubernetes")),
        etcd=bare(get("etcd")),
        kwok=bare(get("kwok")),
        kube_router=bare(get("kube-router")),
        coredns=bare(get("coredns")),
        versitygw=bare(get("versitygw")),
    )


def toolchain_root(environ: Mapping[str, str] | None = None) -> Path:
    """Return the cache root that holds one directory per pin set.

    ``$CGKIT_TOOLCHAIN_DIR`` if set, else ``${XDG_CACHE_HOME:-$HOME/.cache}/cgkit/toolchain``.
    """
    env = os.environ if environ is None else environ
    if env.get("CGKIT_TOOLCHAIN_DIR"):
        return Path(env["CGKIT_TOOLCHAIN_DIR"]).expanduser()
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(cache) / "cgkit" / "toolchain"


def toolchain_dir(pins: Pins | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Return ``<root>/<key>``: the directory of one pin set (bin/, src/, pulumi-home/)."""
    pins = pins or load_pins()
    return toolchain_root(environ) / pins.key()


def bin_dir(pins: Pins | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Return the directory the built binaries are in (may not exist yet)."""
    return toolchain_dir(pins, environ) / "bin"


@dataclass(frozen=True)
class Tool:
    """One binary of the toolchain and how to ask it its version.

    Attributes:
        name: file name in the bin dir.
        family: build family in tools/build-toolchain (one wrapper go.mod each).
        expected: pins -> the version string the tool must report (no leading "v").
        version_args: arguments that make it print its version; None means the tool has no
            version flag and the build writes a stamp file ``bin/.versions/<name>`` instead.
    """

    name: str
    family: str
    expected: Callable[[Pins], str]
    version_args: tuple[str, ...] | None = ("--version",)


TOOLS: tuple[Tool, ...] = (
    Tool("pulumi", "pulumi", lambda p: p.pulumi, ("version",)),
    Tool("pulumi-language-python", "language-python", lambda p: p.language_python_sdk, None),
    Tool("pulumi-language-python-exec", "language-python", lambda p: p.language_python_sdk, None),
    Tool("pulumi-resource-kubernetes", "provider", lambda p: p.kubernetes_provider, None),
    Tool("kube-apiserver", "kubernetes", lambda p: p.kubernetes),
    Tool("kube-controller-manager", "kubernetes", lambda p: p.kubernetes),
    Tool("kube-scheduler", "kubernetes", lambda p: p.kubernetes),
    Tool("kubectl", "kubernetes", lambda p: p.kubernetes, ("version", "--client")),
    Tool("etcd", "etcd", lambda p: p.etcd),
    Tool("kwok", "kwok", lambda p: p.kwok),
    Tool("kwokctl", "kwok", lambda p: p.kwok),
    # the sandbox's real node (cgkit.node): kubelet and kube-proxy from the same k8s.io/kubernetes
    Tool("kubelet", "kubernetes", lambda p: p.kubernetes),
    Tool("kube-proxy", "kubernetes", lambda p: p.kubernetes),
    Tool("kube-router", "kube-router", lambda p: p.kube_router, ("--version",)),
    Tool("coredns", "coredns", lambda p: p.coredns, ("-version",)),
    # the sandbox's object store (cgkit.objectstore)
    Tool("versitygw", "objectstore", lambda p: p.versitygw, ("--version",)),
)


def tool(name: str) -> Tool:
    """Return the Tool called ``name``; raises KeyError naming the known tools otherwise."""
    for t in TOOLS:
        if t.name == name:
            return t
    raise KeyError(f"unknown tool {name!r}; known: {', '.join(t.name for t in TOOLS)}")


def parse_version(text: str) -> str | None:
    """Return the first semantic version in ``text`` without a leading "v", or None.

    >>> parse_version("Kubernetes v1.35.4")
    '1.35.4'
    """
    match = _VERSION_RE.search(text)
    return match.group(1) if match else None


def installed_version(t: Tool, bindir: Path, timeout_s: float = 30.0) -> str | None:
    """Return the version the built tool reports, or None if it is absent or says nothing usable.

    Runs ``<bindir>/<name> <version_args>`` (at most ``timeout_s`` seconds), or reads the stamp
    file for tools without a version flag. Never raises for a missing or broken binary.
    """
    path = bindir / t.name
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    if t.version_args is None:
        stamp = bindir / STAMP_DIR / t.name
        return stamp.read_text().strip() or None if stamp.is_file() else None
    try:
        out = subprocess.run(
            [str(path), *t.version_args], capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(out.stdout + "\n" + out.stderr)


def write_stamp(t: Tool, bindir: Path, version: str) -> None:
    """Record ``version`` for a tool that has no version flag (called by the build script)."""
    stamp_dir = bindir / STAMP_DIR
    stamp_dir.mkdir(parents=True, exist_ok=True)
    (stamp_dir / t.name).write_text(version + "\n")


@dataclass(frozen=True)
class ToolStatus:
    """Doctor's finding for one tool.

    Attributes:
        name: tool name; path: where it should be; found: the version it reports (None = missing
        or unreadable); expected: the pinned version; ok: found == expected.
    """

    name: str
    path: Path
    found: str | None
    expected: str
    ok: bool


def doctor(pins: Pins | None = None, bindir: Path | None = None) -> list[ToolStatus]:
    """Check every tool in the bin dir against the pins.

    Args:
        pins: default: load_pins().
        bindir: default: bin_dir(pins).

    Returns:
        One ToolStatus per entry of TOOLS, in that order. Does not raise for missing tools.
    """
    pins = pins or load_pins()
    bindir = bindir or bin_dir(pins)
    result = []
    for t in TOOLS:
        found, expected = installed_version(t, bindir), t.expected(pins)
        result.append(ToolStatus(t.name, bindir / t.name, found, expected, found == expected))
    return result


def python_bin_dir() -> Path | None:
    """Return the bin dir of the virtualenv this Python runs in, or None outside a virtualenv.

    The language host uses Pulumi.yaml's ``virtualenv`` option when there is one (the cgkit shim
    passes it on, see tools/src/pulumi-language-python); without it, it runs ``python3`` from
    PATH, so engine_env puts this venv right after the toolchain bin dir.
    """
    return Path(sys.prefix) / "bin" if sys.prefix != sys.base_prefix else None


def engine_env(
    pins: Pins | None = None,
    pulumi_home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment variables the Pulumi engine needs to run offline from the bin dir.

    Args:
        pins: default load_pins().
        pulumi_home: PULUMI_HOME; default ``<root>/<key>/pulumi-home`` (created if missing).
        environ: the base environment whose PATH is extended; default os.environ.

    Returns:
        Only the variables to set (overlay them on the base env): PATH (bin dir first, then
        python_bin_dir()), PULUMI_HOME, PULUMI_SKIP_UPDATE_CHECK=true,
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true. The provider is also linked into
        PULUMI_HOME's plugin cache (link_plugins), so a caller that sets
        PULUMI_IGNORE_AMBIENT_PLUGINS=true gets it from there without the engine's warning
        "using pulumi-resource-kubernetes from $PATH"; that is not set here because a caller that
        then points PULUMI_HOME elsewhere would lose the provider. The backend URL and the secrets
        passphrase are the caller's business.
    """
    env = os.environ if environ is None else environ
    pins = pins or load_pins()
    home = pulumi_home or toolchain_dir(pins, env) / "pulumi-home"
    home.mkdir(parents=True, exist_ok=True)
    link_plugins(home, pins, env)
    path = os.pathsep.join(str(p) for p in (bin_dir(pins, env), python_bin_dir(),
                                            env.get("PATH", "")) if p)
    return {
        "PATH": path,
        "PULUMI_HOME": str(home),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }


def link_plugins(pulumi_home: Path, pins: Pins | None = None,
                 environ: Mapping[str, str] | None = None) -> Path:
    """Link the built provider into the plugin cache of ``pulumi_home``; idempotent.

    Creates ``<pulumi_home>/plugins/resource-kubernetes-v<ver>/pulumi-resource-kubernetes`` as a
    symlink to the bin dir's binary (the layout the engine looks up for an exact version), so the
    engine finds it with ambient plugins ignored. Returns the link path. The link may dangle
    until the toolchain is built.
    """
    pins = pins or load_pins()
    name = "pulumi-resource-kubernetes"
    plugin_dir = pulumi_home / "plugins" / f"resource-kubernetes-v{pins.kubernetes_provider}"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    link = plugin_dir / name
    target = bin_dir(pins, environ) / name
    if not (link.is_symlink() and os.readlink(link) == str(target)):
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return link
