"""Everything ``cgkit fleet ... --in-cluster`` does on this machine before and around the Jobs.

``wave_runner_for(root, environment, verb, plans, parallel, options, run_dir)`` returns the
scheduler's wave runner of cgkit/fleet/in_cluster.py, set up once per run:

1. refuse what cannot work: a file backend (pods cannot reach it), a cluster that is not the
   sandbox (the runner image is imported into the real node; no registry is reachable here);
2. build the runner image (cgkit/runner_image.py) and import it into the node;
3. derive the runner's ClusterRole from what the tenant program declares for the selection
   (``cgkit.render``, once per distinct app set and database mode) and apply the management
   namespace's objects, the egress allowed to the API server's endpoints and the object store;
4. per stack, before its wave's Job: open it here (``stackops.open_stack``: a new stack and its
   secrets are made here, under the stack lock, because a pod's files die with it), remove a lock
   left by a runner pod that is gone, and hand the stack config to the wave's Secret.
"""

from __future__ import annotations

import configparser
import dataclasses
import io
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from kubernetes import client, dynamic
from kubernetes import config as kube_config

from cgkit import engine, interrupted, locks, node, runner_image, sandbox
from cgkit.config import loader
from cgkit.cluster import check_environment
from cgkit.config.model import EnvironmentFile
from cgkit.conventions import stack_name
from cgkit.fleet import in_cluster, report
from cgkit.fleet.scheduler import WaveRunner
from cgkit.fleet.selection import WavePlan
from cgkit.node_manifests import NODE_IP
from cgkit.render import render_municipality
from cgkit.stackops import RunOptions, StackNotDeployed, Verb, engine_settings, open_stack

FIELD_MANAGER = "cgkit-fleet"


def wave_runner_for(root: Path, environment: EnvironmentFile, verb: str, plans: list[WavePlan], parallel: int,
                    options: RunOptions, run_dir: Path, progress=lambda _line: None) -> WaveRunner:
    """The wave runner of an in-cluster run (see the module doc).

    Raises:
        InClusterError: a file backend, or an environment whose cluster is not the sandbox.
        ClusterUnreachableError, ClusterUnauthorizedError: the API server did not let us in.
        ImageBuildError, NodeError: the runner image could not be built or imported.
        ConfigError: a selected municipality's config is invalid (rendering its objects).
    """
    settings = engine_settings(root, environment)
    backend = engine.backend_of(settings)
    pod_backend = in_cluster.pod_backend_url(backend, environment.cluster.sandbox, NODE_IP)
    if not environment.cluster.sandbox:
        raise in_cluster.InClusterError(
            f"--in-cluster runs on the sandbox's real node only: environment '{environment.name}' is another "
            "cluster, and its nodes can pull the runner image only from a registry, which this machine cannot reach",
            hint="run the fleet from this machine (without --in-cluster), split with --shard K/N")
    api = _api_client(settings.kubeconfig)
    core = client.CoreV1Api(api)
    image = _runner_image(root, progress)
    runner = in_cluster.Runner(verb=verb, env=environment.name, image=image, parallel=parallel,
                               options=dataclasses.asdict(options), backend_url=pod_backend,
                               egress=tuple(_api_endpoints(core)) + tuple(_store_egress(pod_backend)),
                               aws_profile=os.environ.get("AWS_PROFILE"))
    cluster = in_cluster.Cluster(core=core, batch=client.BatchV1Api(api), apply=_applier(api))
    codes = [code for plan in plans for code in plan.codes]
    cluster.apply(in_cluster.base_manifests(runner, in_cluster.runner_role(_declared_objects(root, environment, codes))))
    pods = lambda hostname: in_cluster.pod_phases(core, hostname)  # noqa: E731

    def prepare(code: str) -> Mapping[str, bytes]:
        name = stack_name(environment.name, code)
        action = Verb(verb)
        if action.runs_program:
            open_stack(environment.name, code, action)  # creates the stack and its secrets here
        for lock in locks.backend_locks(backend):
            if lock.stack == name and locks.holder_gone(lock, runner_pods=pods)[0]:
                interrupted.release(settings, backend, lock)
        config = root / f"Pulumi.{name}.yaml"
        if not config.is_file() and action.runs_program:
            raise StackNotDeployed(f"stack {name} has no stack config at {config}")
        return {config.name: config.read_bytes()} if config.is_file() else {}

    return in_cluster.wave_runner(cluster, runner, in_cluster.new_run_token(), _engine_files(settings), prepare,
                                  lambda code: report.log_file(run_dir, environment.name, code))


def runner_pods_of(root: Path, environment: EnvironmentFile) -> locks.RunnerPods:
    """``locks.RunnerPods`` for the environment's cluster, which is asked only when a lock names a
    runner pod (so unlocking a laptop's lock needs no cluster).

    The callable raises ClusterUnreachableError, ClusterUnauthorizedError as ``check_environment``.
    """
    core: list[client.CoreV1Api] = []

    def phases(hostname: str) -> list[str] | None:
        if not in_cluster.names_runner_pod(hostname):
            return None
        if not core:
            core.append(client.CoreV1Api(_api_client(check_environment(environment, root))))
        return in_cluster.pod_phases(core[0], hostname)

    return phases


def _api_client(kubeconfig: Path | None) -> client.ApiClient:
    configuration = client.Configuration()
    kube_config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None,
                                 client_configuration=configuration, persist_config=False)
    return client.ApiClient(configuration)


def _applier(api: client.ApiClient):
    """Server-side apply of manifest dicts (the kubernetes client's DynamicClient), in order."""
    dyn = dynamic.DynamicClient(api)

    def apply(objects: list[dict]) -> None:
        for obj in objects:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            resource.server_side_apply(body=obj, name=obj["metadata"]["name"],
                                       namespace=obj["metadata"].get("namespace"),
                                       field_manager=FIELD_MANAGER, force_conflicts=True)

    return apply


def _runner_image(root: Path, progress) -> str:
    """Build the runner image and import it into the sandbox's node; return its reference."""
    ref = runner_image.ref(root)
    node.import_images(sandbox.paths(root).node, {ref}, lambda: runner_image.build(progress, root), progress)
    return ref


def _api_endpoints(core: client.CoreV1Api) -> list[tuple[str, int]]:
    """(IP, port) of every endpoint behind the ``default/kubernetes`` Service (where the API server
    really listens: a NetworkPolicy sees a Service's traffic after its address was translated)."""
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    return sorted({(a.ip, p.port) for s in endpoints.subsets or [] for a in s.addresses or [] for p in s.ports or []})


def _store_egress(backend_url: str) -> list[tuple[str, int]]:
    """The object store as an (IP, port) a NetworkPolicy can match.

    Raises:
        InClusterError: its endpoint is a host name (a NetworkPolicy cannot match a name).
    """
    target = in_cluster.endpoint_of(backend_url)
    if target is None:
        raise in_cluster.InClusterError("--in-cluster needs the bucket's endpoint as an IP address in state.backend "
                                        "(endpoint=http://IP:PORT): the runners' egress NetworkPolicy cannot match a name")
    try:
        ipaddress.ip_address(target[0])
    except ValueError:
        raise in_cluster.InClusterError(f"the object store's endpoint {target[0]} is a host name; the runners' egress "
                                        "NetworkPolicy can only match an IP address") from None
    return [target]


def _declared_objects(root: Path, environment: EnvironmentFile, codes: list[str]) -> list[dict]:
    """The objects the tenant program declares for ``codes``: one render per distinct (apps,
    database mode), which is what decides the kinds and Roles a tenant has."""
    shapes: dict[tuple, list[dict]] = {}
    for code in codes:
        if not loader.municipality_file(root, environment.name, code).exists():
            continue  # offboarded: its destroy needs only what its state holds, already in the role
        cfg = loader.load_municipality(root, environment.name, code)
        shape = (tuple(sorted(cfg.apps)), cfg.database.mode)
        if shape not in shapes:
            shapes[shape] = render_municipality(cfg)
    return [obj for objects in shapes.values() for obj in objects]


def _engine_files(settings: engine.EngineSettings) -> dict[str, bytes]:
    """The passphrase and the object store's credentials as the engine here has them (files for the
    wave's Secret, never a command line or a manifest file)."""
    env = engine.engine_env(settings)
    files: dict[str, bytes] = {}
    if "PULUMI_CONFIG_PASSPHRASE" in env:
        files[in_cluster.PASSPHRASE_KEY] = env["PULUMI_CONFIG_PASSPHRASE"].encode()
    elif env.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        files[in_cluster.PASSPHRASE_KEY] = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_bytes()
    if os.environ.get("AWS_SHARED_CREDENTIALS_FILE"):
        files[in_cluster.CREDENTIALS_KEY] = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).read_bytes()
    elif os.environ.get("AWS_ACCESS_KEY_ID"):
        parser = configparser.ConfigParser()
        parser[os.environ.get("AWS_PROFILE", "default")] = {
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "")}
        text = io.StringIO()
        parser.write(text)
        files[in_cluster.CREDENTIALS_KEY] = text.getvalue().encode()
    return files
