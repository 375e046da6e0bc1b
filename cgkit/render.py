"""Render a municipality's Kubernetes objects without a cluster or the Pulumi CLI.

``render_municipality(cfg)`` runs the municipality program (stacks/municipality.py) under Pulumi
mocks and returns every Kubernetes object it declares as a manifest dict — ``apiVersion``, ``kind``,
``metadata``, ``spec``/``data``/... in camelCase, as the API server would receive them. Policies,
the auditor report and the all-municipalities tests read these.

Each run gets its own event loop and a fresh ``contextvars.Context``, so Pulumi's ambient state
(settings, config, root stack) never leaks between runs. Secrets come from fake stack config
(``fake-<name>``), and are unwrapped to plain strings in the manifests. Nothing is unknown: mocks
run as an update, not a preview.

Server-side-apply patches (``ServiceAccountPatch``) are rendered with their object kind
(``ServiceAccount``); :func:`render_resources` keeps the Pulumi type for callers that need it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import importlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pulumi
import pulumi_kubernetes
from pulumi.runtime import mocks as _mocks
from pulumi.runtime.stack import run_pulumi_func

from cgkit import secrets

_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc: marks special values in a map
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... whose value is a secret

#: Order of kinds in the output: what must exist first comes first (as kubectl apply would need).
_KIND_ORDER = ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "Role", "RoleBinding",
               "ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "Service",
               "StatefulSet", "Deployment", "Job", "PodDisruptionBudget", "Ingress"]


@dataclass(frozen=True)
class RenderedResource:
    """One declared resource: its Pulumi type token and name, and the manifest."""

    type: str
    name: str
    manifest: dict[str, Any]
    provider: str | None = None
    """The provider reference the engine would use (``<provider urn>::<id>``)."""
    secret_paths: tuple[str, ...] = ()
    """Dotted paths of manifest values that were secret Outputs (``stringData.SECRET_KEY``)."""
    urn: str | None = None
    """The URN the engine would give it; its type chain shows the parents
    (``...::cgkit:tenant:TenantBaseline$kubernetes:core/v1:Namespace::gm0344-namespace``)."""
    protected: bool = False
    """Declared with Pulumi's ``protect``: the engine refuses to delete or replace it (it holds data)."""


@dataclass
class Rendered:
    """The outcome of one mocked program run."""

    resources: list[RenderedResource] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)


class _Recorder(_mocks.Mocks):
    def __init__(self, stack_outputs: dict[str, Any] | None = None) -> None:
        self.records: list[RenderedResource] = []
        self.stack_outputs = stack_outputs or {}

    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str, dict]:
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.name, "outputs": self.stack_outputs}
        if args.typ.startswith("kubernetes:"):
            self.records.append(RenderedResource(args.typ, args.name, _plain(args.inputs), args.provider,
                                                 tuple(_secret_paths(args.inputs))))
        # Echo back only what programs read from Kubernetes objects (metadata): the SDK turns
        # every returned property into an Output it scans for unknowns, so echoing whole pod
        # templates would double the cost of a render.
        state = {k: v for k, v in args.inputs.items() if k in ("apiVersion", "kind", "metadata")}
        return f"{args.name}-id", state if args.typ.startswith("kubernetes:") else args.inputs

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict, list]:
        return {}, []


class _Monitor(_mocks.MockMonitor):
    """The mock monitor, also noting which URNs were registered with ``protect`` (the mocks' resource
    arguments do not carry resource options)."""

    def __init__(self, mocks: _mocks.Mocks) -> None:
        super().__init__(mocks)
        self.protected: set[str] = set()

    def RegisterResource(self, request):  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)
        if request.protect:
            self.protected.add(response.urn)
        return response


def _secret_paths(value: Any, path: str = "") -> list[str]:
    """Dotted paths of the secret values inside mock inputs."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return [path]
        return [p for k, v in value.items() for p in _secret_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _secret_paths(v, f"{path}[{i}]")]
    return []


def _type_and_name(urn: str) -> tuple[str, str]:
    """``urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>`` -> ``(type, name)``."""
    qualified, name = urn.split("::")[-2:]
    return qualified.rsplit("$", 1)[-1], name


def _plain(value: Any) -> Any:
    """Turn mock inputs into manifest data: unwrap secrets, integral floats back to ints."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def run_program(program: Callable[[], None], *, project: str = "cgkit", stack: str = "test",
                config: dict[str, str] | None = None, secret_keys: list[str] | None = None,
                stack_outputs: dict[str, Any] | None = None) -> Rendered:
    """Run ``program`` under mocks in an isolated context and event loop; return what it declared.

    ``config`` keys are full Pulumi config keys (``"cgkit:openzaak-secret-key"``);
    ``stack_outputs`` are what every StackReference sees as the other stack's outputs.
    """

    def run() -> Rendered:
        with _ONE_AT_A_TIME:
            return _run_isolated(program, project, stack, config, secret_keys, stack_outputs)

    return contextvars.Context().run(run)


#: Pulumi's runtime keeps per-process state besides the context (its RPC bookkeeping), so two
#: mocked runs in different threads (a fleet's workers checking capacity) can wait on each other
#: forever. One at a time; a run takes about 0.3 s.
_ONE_AT_A_TIME = threading.Lock()


def _run_isolated(program: Callable[[], None], project: str, stack: str, config: dict[str, str] | None,
                  secret_keys: list[str] | None, stack_outputs: dict[str, Any] | None) -> Rendered:
    """The body of run_program: inside a fresh context, on a fresh event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        recorder = _Recorder(stack_outputs)
        monitor = _Monitor(recorder)
        pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
        pulumi.runtime.set_mocks(recorder, project=project, stack=stack, preview=False, monitor=monitor)
        loop.run_until_complete(run_pulumi_func(program))
        urns = {_type_and_name(urn): urn for urn in monitor.resources}
        records = [dataclasses.replace(r, urn=urns.get((r.type, r.name)),
                                       protected=urns.get((r.type, r.name)) in monitor.protected)
                   for r in recorder.records]
        root = pulumi.runtime.get_root_resource()
        outputs = getattr(root, "outputs", None) or {}
        exports = loop.run_until_complete(pulumi.Output.from_input(outputs).future()) if outputs else {}
        return Rendered(records, _plain(exports or {}))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _municipality_program() -> Any:
    """Import stacks/municipality.py (the project root may not be on ``sys.path`` when installed)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "stacks").is_dir() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("stacks.municipality")


def fake_secrets(cfg: Any) -> dict[str, str]:
    """Stack config with a fake value for every secret the program of ``cfg`` requires
    (generated and provided ones)."""
    names = secrets.secret_names(cfg) + secrets.provided_secret_names(cfg)
    return {f"{secrets.CONFIG_NAMESPACE}:{name}": f"fake-{name}" for name in names}


def run_municipality(cfg: Any, secret_values: dict[str, str] | None = None) -> Rendered:
    """Run the municipality program of ``cfg`` under mocks (fake secrets, or ``secret_values``: secret
    name -> value, for the names given); resources and exports."""
    program = _municipality_program()
    conf = fake_secrets(cfg)
    conf.update({f"{secrets.CONFIG_NAMESPACE}:{name}": value for name, value in (secret_values or {}).items()})

    def deploy() -> None:
        # A provider without cluster settings: under mocks it is never contacted, and rendering
        # must not depend on a kubeconfig or sandbox being present.
        program.deploy(cfg, k8s_provider=pulumi_kubernetes.Provider("cluster"))

    from stacks.platform import platform_outputs

    return run_program(deploy, stack=f"{cfg.env}.{cfg.code.lower()}", config=conf, secret_keys=list(conf),
                       stack_outputs=platform_outputs(cfg.environment))


def render_resources(cfg: Any) -> list[RenderedResource]:
    """Every Kubernetes resource the municipality program declares, in apply order."""
    rank = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    resources = run_municipality(cfg).resources
    return sorted(resources, key=lambda r: (rank.get(r.manifest.get("kind"), len(rank)),
                                            r.manifest.get("metadata", {}).get("name", ""), r.name))


def render_municipality(cfg: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object the municipality program declares for ``cfg``, as manifest dicts.

    Provider resources are not objects and are left out; the manifests are plain data (secret
    values unwrapped, fake).
    """
    return [r.manifest for r in render_resources(cfg)]


def render_many(cfgs: Sequence[Any], workers: int | None = None) -> list[list[dict[str, Any]]]:
    """``render_municipality`` of each of ``cfgs``, in the same order, over ``workers`` processes.

    Rendering is CPU-bound in the Pulumi SDK (about 0.4-0.9 CPU-s per full tenant on this project's
    2-core machines) and one process renders one program at a time (``_ONE_AT_A_TIME``), so many
    tenants are spread over processes: one per core by default (``os.cpu_count()``), started with
    ``spawn`` (a forked copy of a process that has run the SDK's event loops is not safe). One
    tenant or one worker renders here, in this process.

    Raises:
        Whatever rendering one of them raises (the first, by order).
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(cfgs)))
    if workers == 1:
        return [render_municipality(cfg) for cfg in cfgs]
    chunk = max(1, len(cfgs) // (workers * 8))  # small chunks: workers finish together
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(render_municipality, cfgs, chunksize=chunk))
