"""Backups and restores on demand: Jobs in the tenant's namespace built from its backup CronJob.

``backup_now`` runs the CronJob's own Job template at once (what ``kubectl create job --from=cronjob/``
does); ``export`` runs the offboarding export of ``components.backup.export_job`` (databases and
media volumes, kept apart from the backups and from their retention); ``restore`` runs the restore Job of ``components.backup.restore_job``, built from the same
template, so it has the backups' images, credentials, labels and NetworkPolicies and nothing more.
Each waits for its Job, reads the result its main container wrote as its termination message and
every container's log, and deletes the Job (with its pod) once read.

The CronJob exists only where the tenant was deployed with backups (``backups:`` in the environment
file and an in-cluster database); without it both raise `BackupError` saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from cgkit.backups import BackupError
from components.backup import NAME, export_job, restore_job

TIMEOUT_S = 1800.0
POLL_S = 2.0


@dataclass(frozen=True)
class JobResult:
    """How a Job ended: ``succeeded``, the main container's termination ``message`` (the script's
    one-line result) and ``log`` (every container's output, init containers first)."""

    name: str
    succeeded: bool
    message: str
    log: str

    @property
    def failure(self) -> str:
        """Why a failed Job failed: its result without the ``FAILED`` prefix, or that it left none."""
        return self.message.removeprefix("FAILED ") or "the Job ended without a result"


def backup_now(api: client.ApiClient, namespace: str, timeout_s: float = TIMEOUT_S) -> JobResult:
    """Run a backup of ``namespace``'s databases now and wait for it.

    Raises:
        BackupError: the tenant has no backup CronJob, or the Job did not end within ``timeout_s``.
    """
    template = _job_template(api, namespace)
    name = f"{NAME}-now-{_stamp()}"
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": template["metadata"].get("labels", {}),
                         "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
            "spec": template["spec"]}
    return _run(api, namespace, body, "upload", timeout_s)


def export(api: client.ApiClient, namespace: str, media_claims: tuple[str, ...], extra_work_mib: int = 0,
           timeout_s: float = TIMEOUT_S) -> JobResult:
    """Export ``namespace``'s databases and the media volumes ``media_claims`` (PVC names) to the
    tenant's ``offboard/`` folder and wait for it; the result message is ``<id> <bytes>``.
    ``extra_work_mib``: room for the media archives beside the dumps (their claims' size, MiB).

    Raises:
        BackupError: the tenant has no backup CronJob, or the Job did not end within ``timeout_s``.
    """
    template = _job_template(api, namespace)["spec"]["template"]
    body = export_job(template, f"{NAME.replace('backup', 'export')}-{_stamp()}", media_claims, extra_work_mib)
    return _run(api, namespace, body, "upload", timeout_s)


def restore(api: client.ApiClient, namespace: str, backup_id: str, *, suffix: str = "", drill: bool = False,
            databases: tuple[str, ...] = (), timeout_s: float = TIMEOUT_S) -> JobResult:
    """Restore backup ``backup_id`` into fresh databases ``<db><suffix>`` of ``namespace``'s
    PostgreSQL and check them against the manifest; a ``drill`` drops each copy once checked.

    Raises:
        BackupError: the tenant has no backup CronJob, or the Job did not end within ``timeout_s``.
    """
    template = _job_template(api, namespace)["spec"]["template"]
    name = f"{NAME.replace('backup', 'restore')}-{_stamp()}"
    body = restore_job(template, name, backup_id, suffix=suffix, drop_after=drill, databases=databases)
    return _run(api, namespace, body, "restore", timeout_s)


def delete_exports(api: client.ApiClient, namespace: str) -> list[str]:
    """Delete the export Jobs left in ``namespace`` (with their pods; an offboarding stopped while it
    waited leaves its Job): their pods mount the media claims, and a claim a pod uses is not deleted
    (the pvc-protection finalizer), so a destroy would wait on it. Returns the Jobs' names."""
    batch = client.BatchV1Api(api)
    prefix = f"{NAME.replace('backup', 'export')}-"
    names = [job.metadata.name for job in batch.list_namespaced_job(namespace).items
             if job.metadata.name.startswith(prefix)]
    for name in names:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
    return names


def has_schedule(api: client.ApiClient, namespace: str) -> bool:
    """Whether ``namespace`` has the backup CronJob (it is deployed with backups)."""
    try:
        client.BatchV1Api(api).read_namespaced_cron_job(NAME, namespace)
    except ApiException as failed:
        if failed.status == 404:
            return False
        raise
    return True


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")


def _job_template(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    """The CronJob's ``spec.jobTemplate`` as the API returns it (camelCase)."""
    try:
        cronjob = client.BatchV1Api(api).read_namespaced_cron_job(NAME, namespace)
    except ApiException as failed:
        if failed.status == 404:
            raise BackupError(f"namespace {namespace} has no CronJob {NAME}: the tenant is not backed up",
                              hint="add backups (endpoint, bucket) to the environment file and run cgkit up; "
                                   "a tenant with an external database is backed up by that database's service") from None
        raise
    return api.sanitize_for_serialization(cronjob)["spec"]["jobTemplate"]


def _run(api: client.ApiClient, namespace: str, body: dict[str, Any], main: str, timeout_s: float) -> JobResult:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = body["metadata"]["name"]
    batch.create_namespaced_job(namespace, body)
    try:
        succeeded = _wait(batch, namespace, name, timeout_s)
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        return JobResult(name=name, succeeded=succeeded, message=_message(pods, main), log=_logs(core, namespace, pods))
    finally:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")


def _wait(batch: client.BatchV1Api, namespace: str, name: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = batch.read_namespaced_job(name, namespace).status  # jobs get, not jobs/status
        if status.succeeded:
            return True
        if status.failed:
            return False
        time.sleep(POLL_S)
    raise BackupError(f"Job {namespace}/{name} did not end within {timeout_s:.0f} s",
                      hint=f"kubectl -n {namespace} describe job {name}")


def _message(pods: list, container: str) -> str:
    for pod in pods:
        for status in (pod.status.container_statuses or []) + (pod.status.init_container_statuses or []):
            terminated = status.state.terminated if status.state else None
            if terminated and terminated.message and (status.name == container or terminated.exit_code):
                return terminated.message.strip()
    return ""


def _logs(core: client.CoreV1Api, namespace: str, pods: list) -> str:
    parts = []
    for pod in pods:
        for c in (pod.spec.init_containers or []) + pod.spec.containers:
            try:
                raw = core.read_namespaced_pod_log(pod.metadata.name, namespace, container=c.name,
                                                   _preload_content=False)
                text = raw.data.decode("utf-8", errors="replace")
            except ApiException as unreadable:
                text = f"(no log: {unreadable.reason})\n"
            parts.append(f"--- {c.name}\n{text}")
    return "".join(parts)
