"""The fleet as Kubernetes Jobs: ``cgkit fleet up --in-cluster`` runs each wave as one Indexed Job.

What a run puts in the management namespace ``cgkit-fleet`` (``NAMESPACE``), all labelled
``app.kubernetes.io/managed-by: cgkit``:

* once (``base_manifests``): the Namespace (Pod Security Admission ``restricted``), the runner's
  ServiceAccount, a ClusterRole derived from what the tenant program declares (``runner_role``:
  every kind it creates, with the verbs the engine uses, plus every rule of the Roles it creates,
  which Kubernetes requires a creator to hold; never ``*``, never cluster-admin) and its binding,
  and NetworkPolicies: nothing in, and out only to the API server's endpoints and the state's
  object store (``Runner.egress``);
* per wave (``wave_manifests``): a Secret with what the engine needs and a pod must not generate
  (the passphrase file, the object store's credentials, each stack's ``Pulumi.<stack>.yaml`` with
  its encrypted secrets and salt), a ConfigMap with the wave's codes, one per line, and the Job:
  ``completionMode: Indexed``, ``completions`` = the wave's stacks, ``parallelism`` = P,
  ``backoffLimitPerIndex: 0`` (a failed stack is a failed stack, as on one machine, and the other
  indexes go on). Pod ``i`` runs ``python -m cgkit.fleet.pod`` (cgkit/fleet/pod.py) on code ``i``
  against the shared backend and writes its result as JSON to its termination message.

``wave_runner`` is the scheduler's wave runner for the cluster (``scheduler.run_waves``): waves,
failure budgets, the live view and the report are the same as on one machine. It opens each stack
on this machine first (creating it and its secrets, under the stack lock), because whatever a pod
writes dies with it; it then reads each pod's result and log (the engine's output, secrets masked)
into the run directory, and deletes the wave's objects. A lock left by a runner pod that died
(``pod_phases``) is provably gone once no pod of that Job and index runs; such locks are removed
before a wave starts, every other lock stays and that stack reports ``locked``.

Only a shared backend can be used (``s3://``): a file backend lives on this machine. On the
sandbox the pods reach the object store on the node's bridge address (``NODE_IP``), where
``cgkit sandbox up --object-store`` also listens.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cgkit.errors import CgkitError
from cgkit.fleet.scheduler import OnUpdate, Status, StackResult, WaveRunner, first_error_line

NAMESPACE = "cgkit-fleet"
RUNNER = "cgkit-fleet-runner"
MANAGED = {"app.kubernetes.io/managed-by": "cgkit", "app.kubernetes.io/part-of": "cgkit-fleet"}
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"  #: where in-cluster clients read their token
SECRETS_MOUNT = "/run/cgkit/secrets"  #: the wave's Secret: passphrase, credentials, stack configs
STACKS_MOUNT = "/run/cgkit/stacks"  #: the wave's ConfigMap: ``codes``, one CBS code per line
PASSPHRASE_KEY, CREDENTIALS_KEY = "passphrase", "aws-credentials"
#: A runner pod ends within this many seconds or is stopped (a hung engine must not hold a wave).
POD_DEADLINE_S = 3600
#: What each runner pod asks for and may use: one engine, its provider and the program (the
#: multitenancy benchmark measured ~0.5 GiB and ~20 CPU-s per full tenant).
POD_RESOURCES = {"requests": {"cpu": "250m", "memory": "768Mi", "ephemeral-storage": "256Mi"},
                 "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "1Gi"}}
#: Verbs the engine uses on what the program declares (create, read back, update, delete).
ENGINE_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
#: A Secret and a ConfigMap hold at most 1 MiB; a wave's stack configs above this are refused.
SECRET_LIMIT_BYTES = 900 * 1024
#: The hostname of an Indexed Job's pod is ``<job>-<index>``: what a runner pod writes into a lock.
_POD_HOST = re.compile(r"^(?P<job>(preview|up|refresh|destroy)-[0-9a-f]{6}-w\d+)-(?P<index>\d+)$")


class InClusterError(CgkitError):
    """An in-cluster fleet run cannot start (no shared backend, too much to carry) or its Job failed."""

    reference = "fleet-in-cluster"


@dataclass(frozen=True)
class Runner:
    """What every Job of one in-cluster run shares.

    Attributes:
        verb: preview | up | refresh | destroy. env: the environment. image: the runner image ref.
        parallel: pods of a wave at once. options: the verb's flags as JSON-able dict
            (``stackops.RunOptions`` fields). backend_url: the state backend as the pods reach it.
        egress: (IP address, TCP port) pairs a pod may connect to: the API server's endpoints and
            the object store.
        aws_profile: the profile of the credentials file, when the Secret carries one.
    """

    verb: str
    env: str
    image: str
    parallel: int
    options: Mapping[str, bool]
    backend_url: str
    egress: tuple[tuple[str, int], ...]
    aws_profile: str | None = None


def pod_backend_url(url: str, sandbox: bool, node_ip: str) -> str:
    """The state backend URL as a pod sees it: on the sandbox an endpoint on this machine's loopback
    (``127.0.0.1``, ``localhost``) becomes ``node_ip`` (the node's bridge, where the store also
    listens); any other URL is unchanged.

    Raises:
        InClusterError: the backend is not ``s3://`` (a file backend lives on this machine only).
    """
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise InClusterError(f"--in-cluster needs a shared state backend (s3://...), not {parts.scheme}://: a file "
                             "backend lives on this machine, where no pod reaches it",
                             hint="set state.backend in the environment file (README, 'For a team'), or "
                                  "cgkit state migrate --env ENV --to s3://...")
    params = parse_qsl(parts.query, keep_blank_values=True)
    moved = []
    for key, value in params:
        endpoint = urlsplit(value) if key == "endpoint" else None
        if sandbox and endpoint is not None and endpoint.hostname in ("127.0.0.1", "localhost"):
            value = urlunsplit(endpoint._replace(netloc=f"{node_ip}:{endpoint.port}" if endpoint.port else node_ip))
        moved.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(moved, safe=":/")))


def endpoint_of(backend_url: str) -> tuple[str, int] | None:
    """(host, port) of an ``s3://`` URL's ``endpoint`` parameter, or None when it has none (AWS)."""
    endpoint = dict(parse_qsl(urlsplit(backend_url).query)).get("endpoint")
    if not endpoint:
        return None
    target = urlsplit(endpoint)
    return target.hostname or "", target.port or (443 if target.scheme == "https" else 80)


# ---- manifests ------------------------------------------------------------------------------------

def _plural(kind: str) -> str:
    """A kind's resource name, as Kubernetes guesses it (apimachinery's UnsafeGuessKindToResource)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in tuple("aeiou"):
        return lower[:-1] + "ies"
    return lower + "s"


def runner_role(objects: Iterable[Mapping]) -> dict:
    """The runner's ClusterRole from the objects a tenant program declares (``cgkit.render``): the
    engine's verbs on every kind among them, plus every rule of the Roles among them (Kubernetes
    lets a subject create a Role only with the permissions it grants: RBAC escalation prevention).
    Rules are merged per API group and verbs, sorted, so the same program gives the same role."""
    verbs_of: dict[tuple[str, str], set[str]] = {}  # (API group, resource) -> verbs

    def grant(group: str, verbs: Iterable[str], resources: Iterable[str]) -> None:
        for resource in resources:
            verbs_of.setdefault((group, resource), set()).update(verbs)

    for obj in objects:
        api_version = str(obj.get("apiVersion", ""))
        grant(api_version.rpartition("/")[0], ENGINE_VERBS, [_plural(str(obj.get("kind", "")))])
        if obj.get("kind") == "Role":
            for rule in obj.get("rules") or []:
                for group in rule.get("apiGroups") or [""]:
                    grant(group, rule.get("verbs") or [], rule.get("resources") or [])
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # resources with the same verbs share a rule
    for (group, resource), verbs in sorted(verbs_of.items()):
        merged.setdefault((group, tuple(sorted(verbs))), []).append(resource)
    rules = [{"apiGroups": [group], "resources": resources, "verbs": list(verbs)}
             for (group, verbs), resources in sorted(merged.items())]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": RUNNER, "labels": dict(MANAGED)}, "rules": rules}


def base_manifests(runner: Runner, role: dict) -> list[dict]:
    """The objects every run of the fleet in the cluster needs (see the module doc), in apply order."""
    meta = {"namespace": NAMESPACE, "labels": dict(MANAGED)}
    egress = [{"to": [{"ipBlock": {"cidr": f"{ip}/32" if ":" not in ip else f"{ip}/128"}}],
               "ports": [{"protocol": "TCP", "port": port}]} for ip, port in runner.egress]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {
            **MANAGED, **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
            "pod-security.kubernetes.io/enforce-version": "latest"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": RUNNER, **meta},
         "automountServiceAccountToken": False},
        role,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": RUNNER, "labels": dict(MANAGED)},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": RUNNER},
         "subjects": [{"kind": "ServiceAccount", "name": RUNNER, "namespace": NAMESPACE}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny", **meta},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "runner-egress", **meta},
         "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": RUNNER}}, "policyTypes": ["Egress"],
                  "egress": egress}},
    ]


def job_name(verb: str, run_token: str, wave_index: int) -> str:
    """``<verb>-<6 hex>-w<wave>``: unique per run and wave, short enough for ``<job>-<index>`` hostnames."""
    return f"{verb}-{run_token}-w{wave_index}"


def new_run_token() -> str:
    """Six random hex digits naming one in-cluster run's Jobs."""
    return secrets.token_hex(3)


def wave_manifests(runner: Runner, name: str, codes: list[str], secret_files: Mapping[str, bytes]) -> list[dict]:
    """The Secret, ConfigMap and Indexed Job of one wave named ``name`` over ``codes``.

    ``secret_files``: file name -> content for the Secret (``PASSPHRASE_KEY``, ``CREDENTIALS_KEY``,
    ``Pulumi.<stack>.yaml``); pods see them under ``SECRETS_MOUNT``.

    Raises:
        InClusterError: the files exceed ``SECRET_LIMIT_BYTES`` (Kubernetes keeps 1 MiB per object).
    """
    import base64

    size = sum(len(v) for v in secret_files.values())
    if size > SECRET_LIMIT_BYTES:
        raise InClusterError(f"wave {name}: the stack configs of its {len(codes)} stack(s) and the engine's files take "
                             f"{size} bytes, more than the {SECRET_LIMIT_BYTES} a Secret may carry here",
                             hint="split the run with --shard K/N")
    meta = {"namespace": NAMESPACE, "labels": {**MANAGED, "cgkit.io/fleet-job": name}}
    env = {"CGKIT_IN_CLUSTER": "1", "CGKIT_FLEET_VERB": runner.verb, "CGKIT_FLEET_ENV": runner.env,
           "CGKIT_FLEET_OPTIONS": json.dumps(dict(runner.options), sort_keys=True),
           "PULUMI_BACKEND_URL": runner.backend_url, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    if PASSPHRASE_KEY in secret_files:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = f"{SECRETS_MOUNT}/{PASSPHRASE_KEY}"
    if CREDENTIALS_KEY in secret_files:
        env |= {"AWS_SHARED_CREDENTIALS_FILE": f"{SECRETS_MOUNT}/{CREDENTIALS_KEY}", "AWS_EC2_METADATA_DISABLED": "true"}
        if runner.aws_profile:
            env["AWS_PROFILE"] = runner.aws_profile
    container = {
        "name": "runner", "image": runner.image, "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": POD_RESOURCES, "terminationMessagePolicy": "File",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True},
                         {"name": "stacks", "mountPath": STACKS_MOUNT, "readOnly": True},
                         {"name": "api-token", "mountPath": TOKEN_MOUNT, "readOnly": True},
                         {"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {"metadata": {"labels": {**MANAGED, "app.kubernetes.io/name": RUNNER, "cgkit.io/fleet-job": name}},
           "spec": {"serviceAccountName": RUNNER, "automountServiceAccountToken": False, "restartPolicy": "Never",
                    "activeDeadlineSeconds": POD_DEADLINE_S, "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                                        "fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"},
                    "containers": [container],
                    "volumes": [{"name": "secrets", "secret": {"secretName": name, "defaultMode": 0o440}},
                                {"name": "stacks", "configMap": {"name": name}}, _api_token_volume(),
                                {"name": "work", "emptyDir": {"sizeLimit": "512Mi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]}}
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, **meta},
         "data": {k: base64.b64encode(v).decode() for k, v in sorted(secret_files.items())}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
         "data": {"codes": "".join(f"{code}\n" for code in codes)}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, **meta},
         "spec": {"completionMode": "Indexed", "completions": len(codes), "parallelism": runner.parallel,
                  "backoffLimitPerIndex": 0, "maxFailedIndexes": len(codes), "ttlSecondsAfterFinished": 3600,
                  "activeDeadlineSeconds": POD_DEADLINE_S * -(-len(codes) // runner.parallel) + 600,
                  "template": pod}},
    ]


def _api_token_volume() -> dict:
    """The runner's API credentials as an explicit projected volume where clients look for them
    (client-go, the kubernetes Python client): a bound token that expires with the pod's deadline,
    the cluster's CA and the namespace. Only this container mounts it; automounting stays off."""
    return {"name": "api-token", "projected": {"defaultMode": 0o444, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": POD_DEADLINE_S + 600}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}


# ---- locks of runner pods ---------------------------------------------------------------------------

def names_runner_pod(hostname: str) -> bool:
    """Whether a lock's ``hostname`` has the form of a runner pod's (``<verb>-<6 hex>-w<wave>-<index>``)."""
    return _POD_HOST.match(hostname) is not None


def pod_phases(core, hostname: str) -> list[str] | None:
    """The phases of the pods a lock's ``hostname`` can name (``<job>-<index>`` of a runner Job), or
    None when the hostname is no runner pod's. [] means no such pod exists any more."""
    match = _POD_HOST.match(hostname)
    if match is None:
        return None
    selector = f"batch.kubernetes.io/job-name={match['job']},batch.kubernetes.io/job-completion-index={match['index']}"
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
    return [pod.status.phase or "Pending" for pod in pods]


# ---- running a wave ---------------------------------------------------------------------------------

@dataclass
class Cluster:
    """The API clients a run uses: ``core`` (CoreV1Api), ``batch`` (BatchV1Api), ``apply(objects)``
    (server-side apply of manifest dicts, field manager ``cgkit-fleet``)."""

    core: object
    batch: object
    apply: Callable[[list[dict]], None]


def wave_runner(cluster: Cluster, runner: Runner, token: str, shared_files: Mapping[str, bytes],
                prepare: Callable[[str], Mapping[str, bytes]], log_path: Callable[[str], Path],
                poll_s: float = 2.0) -> WaveRunner:
    """The scheduler's wave runner that runs each wave as one Indexed Job (see the module doc).

    ``shared_files``: the Secret's files every stack needs (passphrase, credentials).
    ``prepare(code)`` readies one stack on this machine (opens it, clears a gone runner pod's lock)
    and returns its own files (its stack config); a stack whose preparation raises a CgkitError
    fails with that error and gets no pod. ``log_path(code)``: where a stack's log goes.
    """
    waves = iter(range(10_000))

    def run_wave(results: list[StackResult], on_update: OnUpdate, stop: threading.Event) -> None:
        name = job_name(runner.verb, token, next(waves))
        files, members = dict(shared_files), []
        for result in results:
            try:
                files |= prepare(result.code)
                members.append(result)
            except CgkitError as failed:
                result.status, result.error_kind = Status.FAILED, failed.reference
                result.error = first_error_line(failed)
                on_update(result)
        if not members:
            return
        cluster.apply(wave_manifests(runner, name, [r.code for r in members], files))
        try:
            _follow(cluster, name, members, on_update, stop, log_path, poll_s)
        finally:
            _delete_wave(cluster, name)

    return run_wave


def _follow(cluster: Cluster, name: str, members: list[StackResult], on_update: OnUpdate, stop: threading.Event,
            log_path: Callable[[str], Path], poll_s: float) -> None:
    """Poll the Job's pods until every index ended; fill each result from its pod. An index whose
    pod vanished (evicted, deleted) fails once the Job has ended. On Ctrl-C: suspend the Job (no new
    pod; the running ones get SIGTERM, which the engine turns into a graceful cancel)."""
    open_ = dict(enumerate(members))
    while open_:
        try:
            time.sleep(poll_s)
            pods = cluster.core.list_namespaced_pod(NAMESPACE, label_selector=f"batch.kubernetes.io/job-name={name}").items
            ended = _job_ended(cluster.batch.read_namespaced_job_status(name, NAMESPACE))
        except KeyboardInterrupt:
            stop.set()
            cluster.batch.patch_namespaced_job(name, NAMESPACE, {"spec": {"suspend": True}})
            continue
        for pod in pods:
            result = open_.get(int(pod.metadata.annotations.get("batch.kubernetes.io/job-completion-index", -1)))
            if result is not None:
                _observe(cluster, pod, result, on_update, log_path)
        for index, result in list(open_.items()):
            if result.status not in (Status.PENDING, Status.RUNNING):
                del open_[index]
            elif ended or (stop.is_set() and not any(p.status.phase in ("Pending", "Running") for p in pods)):
                result.status = Status.NOT_STARTED if stop.is_set() else Status.FAILED
                result.error_kind, result.error = "runner-pod-failed", f"no runner pod of Job {name} ran it to the end ({ended})"
                on_update(result)
                del open_[index]


def _job_ended(job) -> str | None:
    """The reason a Job ended (its Complete or Failed condition), or None while it runs."""
    for condition in job.status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.reason or condition.type
    return None


def _observe(cluster: Cluster, pod, result: StackResult, on_update: OnUpdate, log_path: Callable[[str], Path]) -> None:
    """Move ``result`` on by what its pod shows: running, or ended (its result and log read)."""
    if result.status == Status.PENDING and pod.status.phase == "Running":
        result.status, result.started_at = Status.RUNNING, _started(pod)
        on_update(result)
    if pod.status.phase in ("Succeeded", "Failed"):
        _record(cluster, pod, result, log_path(result.code))
        on_update(result)


def _started(pod) -> str | None:
    return pod.status.start_time.isoformat(timespec="seconds") if pod.status.start_time else None


def _record(cluster: Cluster, pod, result: StackResult, log: Path) -> None:
    """One ended pod's result (its termination message) and log into ``result`` and ``log``."""
    terminated = next((s.state.terminated for s in pod.status.container_statuses or []
                       if s.state and s.state.terminated), None)
    try:
        body = json.loads(terminated.message) if terminated and terminated.message else {}
    except ValueError:
        body = {}
    result.started_at = result.started_at or _started(pod)
    result.duration_s = float(body.get("duration_s", 0.0))
    result.changes = {str(k): int(v) for k, v in (body.get("changes") or {}).items()}
    if body.get("status") == Status.SUCCEEDED:
        result.status = Status.SUCCEEDED
    else:
        result.status = Status.FAILED
        why = terminated.reason if terminated else (pod.status.reason or pod.status.phase)
        result.error_kind = body.get("error_kind") or "runner-pod-failed"
        result.error = body.get("error") or f"runner pod {pod.metadata.name} ended without a result ({why})"
    try:
        raw = cluster.core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, _preload_content=False)
        text = raw.data.decode("utf-8", errors="replace")
    except Exception as unreadable:  # noqa: BLE001 - a missing log must not lose the result
        text = f"(the log of pod {pod.metadata.name} could not be read: {unreadable})\n"
    log.write_text(text, encoding="utf-8")


def _delete_wave(cluster: Cluster, name: str) -> None:
    """Delete the wave's Job (with its pods), ConfigMap and Secret; what is already gone is fine."""
    from kubernetes.client.rest import ApiException

    for delete in (lambda: cluster.batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background"),
                   lambda: cluster.core.delete_namespaced_config_map(name, NAMESPACE),
                   lambda: cluster.core.delete_namespaced_secret(name, NAMESPACE)):
        try:
            delete()
        except ApiException as gone:
            if gone.status != 404:
                raise
