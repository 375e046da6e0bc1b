"""Backup: scheduled logical backups of a tenant's PostgreSQL to an S3 bucket (``cgkit.backups``).

Creates, in the tenant namespace (object names in brackets):

* ServiceAccount [``postgresql-backup``] without an automounted token;
* Secret [``postgresql-backup``] with the tenant's own store credentials (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``: secret Outputs from the stack config, never generated here);
* ConfigMap [``postgresql-backup``] with the five scripts of components/scripts/ (dump, media,
  upload, fetch, restore);
* CronJob [``postgresql-backup``] on the schedule: an init container ``dump`` (the PostgreSQL image,
  so ``pg_dump`` matches the server's major version) writes every database of the server (a
  disabled app's too: provisioning never drops one) in custom format with its manifest to an emptyDir; the container ``upload`` (the AWS CLI image) copies it to
  ``s3://<bucket>/<env>/<code>/<id>/``, manifest last, and applies the retention. One at a time
  (``concurrencyPolicy: Forbid``), at most six hours each, the last three successful and failed Jobs
  kept for inspection.

`cgkit backup now` runs the CronJob's Job template at once; `cgkit restore` builds its Job from the
same template (``restore_job``), and so does `cgkit offboard` (``export_job``: databases and
media volumes to ``<env>/<code>/offboard/``, nothing deleted there by retention), so a restore runs with exactly the images, credentials, labels and
NetworkPolicies of the backups (``app.kubernetes.io/component: backup``; components.tenant allows
these pods PostgreSQL and the store, nothing else). Both images run as UID 999, non-root, read-only
root filesystem, all capabilities dropped, ``seccompProfile: RuntimeDefault`` (PSS restricted).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import _defaults as d
from components._quantity import format_memory, memory_mib
from components.backing import BACKUP, POSTGRES

NAME = f"{POSTGRES}-backup"
#: The AWS CLI v2 image (docker.io/amazon/aws-cli, Apache-2.0), pinned.
AWSCLI_IMAGE = "docker.io/amazon/aws-cli:2.22.35"
SCRIPTS = {f"{step}.sh": (Path(__file__).parent / "scripts" / f"backup-{step}.sh").read_text()
           for step in ("dump", "media", "upload", "fetch", "restore")}
WORK = "/work"
MEDIA = "/media"
#: Where an offboarding export goes, under the tenant's prefix (``<env>/<code>/``).
EXPORTS = "offboard/"
#: A backup or restore Job that runs longer is stopped: one that hangs would otherwise hold the
#: CronJob's one slot (``concurrencyPolicy: Forbid``) and no backup would run again.
DEADLINE_S = 6 * 3600
_UID = 999
_MOUNTS = [{"name": "work", "mount_path": WORK}, {"name": "scripts", "mount_path": "/scripts"},
           {"name": "tmp", "mount_path": "/tmp"}]


@dataclass(frozen=True)
class BackupArgs:
    """Inputs of :class:`Backup`."""

    code: str
    environment: str
    namespace: pulumi.Input[str]
    schedule: str
    keep_daily: int
    keep_weekly: int
    endpoint: str
    bucket: str
    region: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]
    work_size: str
    """Size limit of the emptyDir the dump is written to (the database volume's size)."""
    postgres_image: str
    awscli_image: str = AWSCLI_IMAGE
    resources: dict[str, dict[str, str]] | None = None
    """Of each container; default 50m/128Mi requested, 1 CPU/512Mi limit."""


def _resources(args: BackupArgs) -> dict[str, dict[str, str]]:
    return args.resources or {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


def pod_template(args: BackupArgs, labels: dict[str, str]) -> dict[str, Any]:
    """The backup pod: ``dump`` (init, PostgreSQL image) then ``upload`` (AWS CLI image)."""
    def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": name, "value_from": {"secret_key_ref": {"name": secret, "key": key}}}

    pg_env = [{"name": "PGHOST", "value": POSTGRES}, {"name": "PGUSER", "value": "postgres"},
              secret_env("PGPASSWORD", POSTGRES, "POSTGRES_PASSWORD"),
              {"name": "CODE", "value": args.code}, {"name": "ENVIRONMENT", "value": args.environment},
              {"name": "WORK", "value": WORK}]
    s3_env = [secret_env("AWS_ACCESS_KEY_ID", NAME, "AWS_ACCESS_KEY_ID"),
              secret_env("AWS_SECRET_ACCESS_KEY", NAME, "AWS_SECRET_ACCESS_KEY"),
              {"name": "AWS_DEFAULT_REGION", "value": args.region}, {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
              {"name": "HOME", "value": "/tmp"}, {"name": "S3_ENDPOINT", "value": args.endpoint},
              {"name": "BUCKET", "value": args.bucket},
              {"name": "PREFIX", "value": f"{args.environment}/{args.code.lower()}/"},
              {"name": "KEEP_DAILY", "value": str(args.keep_daily)}, {"name": "KEEP_WEEKLY", "value": str(args.keep_weekly)},
              {"name": "WORK", "value": WORK}]
    dump = {"name": "dump", "image": args.postgres_image, "command": ["/bin/sh", "/scripts/dump.sh"],
            "env": pg_env, "resources": _resources(args), "volume_mounts": _MOUNTS}
    upload = {"name": "upload", "image": args.awscli_image, "command": ["/bin/sh", "/scripts/upload.sh"],
              "env": s3_env, "resources": _resources(args), "volume_mounts": _MOUNTS}
    return {
        "metadata": {"labels": labels},
        "spec": d.pod_spec(NAME, _UID, [upload], init_containers=[dump], read_only_root=True,
                           restart_policy="Never",
                           volumes=[{"name": "work", "empty_dir": {"size_limit": args.work_size}},
                                    {"name": "scripts", "config_map": {"name": NAME}},
                                    {"name": "tmp", "empty_dir": {}}]),
    }


def restore_job(template: dict[str, Any], name: str, backup_id: str, *, suffix: str = "", drop_after: bool = False,
                databases: Sequence[str] = ()) -> dict[str, Any]:
    """A restore Job (API dict, camelCase as the cluster returns it) built from the CronJob's pod
    ``template`` (``spec.jobTemplate.spec.template`` as read from the cluster): the ``upload``
    container becomes the init container ``fetch``, the ``dump`` init container becomes ``restore``,
    with the same images, credentials, labels and mounts. ``suffix`` names the restored databases
    ``<db><suffix>``; ``drop_after`` drops each once it is checked (a drill); ``databases`` limits the
    restore to those (default: every database of the backup).
    """
    pod = copy.deepcopy(template)
    spec = pod["spec"]
    upload, dump = _steps(spec)
    extra = [{"name": "BACKUP_ID", "value": backup_id}, {"name": "SUFFIX", "value": suffix},
             {"name": "DROP_AFTER", "value": "1" if drop_after else ""}]
    fetch = {**upload, "name": "fetch", "command": ["/bin/sh", "/scripts/fetch.sh"], "env": upload["env"] + extra}
    restore = {**dump, "name": "restore", "command": ["/bin/sh", "/scripts/restore.sh"],
               "env": dump["env"] + extra + [{"name": "DATABASES", "value": " ".join(databases)}]}
    spec["initContainers"], spec["containers"] = [fetch], [restore]
    return _one_off_job(name, pod)


def export_job(template: dict[str, Any], name: str, media_claims: Sequence[str], extra_work_mib: int = 0
               ) -> dict[str, Any]:
    """An offboarding export Job (API dict, camelCase) built from the CronJob's pod ``template``:
    the backup's ``dump`` and ``upload`` with the same images, credentials and labels, plus an init
    container ``media`` (the PostgreSQL image) that archives each claim of ``media_claims`` (mounted
    read-only under ``/media/<claim>``) into the backup and its manifest. It uploads to
    ``<env>/<code>/offboard/<id>/`` and applies no retention there (``RETAIN_ALL``). The work
    volume grows by ``extra_work_mib`` (the media claims' size) so the archives fit beside the dumps.
    """
    pod = copy.deepcopy(template)
    spec = pod["spec"]
    upload, dump = _steps(spec)
    upload["env"] = [{**e, "value": e["value"] + EXPORTS} if e["name"] == "PREFIX" else e for e in upload["env"]] \
        + [{"name": "RETAIN_ALL", "value": "1"}]
    mounts = [{"name": f"media-{i}", "mountPath": f"{MEDIA}/{claim}", "readOnly": True}
              for i, claim in enumerate(media_claims)]
    media = {**dump, "name": "media", "command": ["/bin/sh", "/scripts/media.sh"],
             "env": [{"name": "WORK", "value": WORK}, {"name": "MEDIA", "value": MEDIA}],
             "volumeMounts": dump["volumeMounts"] + mounts}
    spec["initContainers"] = [dump, media]
    for volume in spec["volumes"]:
        if volume["name"] == "work" and "sizeLimit" in volume.get("emptyDir", {}):
            volume["emptyDir"]["sizeLimit"] = format_memory(memory_mib(volume["emptyDir"]["sizeLimit"]) + extra_work_mib)
    spec["volumes"] = spec["volumes"] + [{"name": f"media-{i}", "persistentVolumeClaim": {"claimName": claim,
                                                                                          "readOnly": True}}
                                         for i, claim in enumerate(media_claims)]
    return _one_off_job(name, pod)


def _steps(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The backup pod's ``upload`` container and ``dump`` init container (API dicts, camelCase)."""
    return (next(c for c in spec["containers"] if c["name"] == "upload"),
            next(c for c in spec["initContainers"] if c["name"] == "dump"))


def _one_off_job(name: str, pod: dict[str, Any]) -> dict[str, Any]:
    """A Job that runs ``pod`` once (no retry), at most DEADLINE_S, kept a day for inspection."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": pod["metadata"]["labels"]},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_S, "ttlSecondsAfterFinished": 86400,
                     "template": pod}}


class Backup(pulumi.ComponentResource):
    """The tenant's scheduled PostgreSQL backups (see the module doc). Outputs: ``schedule``."""

    schedule: pulumi.Output[str]

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None):
        d.require_provider("Backup", name, opts)
        super().__init__("cgkit:backing:Backup", name, None, opts)
        labels = d.labels(args.code, POSTGRES, BACKUP)
        meta = {"name": NAME, "namespace": args.namespace, "labels": labels}
        d.service_account(f"{name}-sa", meta, self)
        secret = k8s.core.v1.Secret(
            f"{name}-secret", metadata=meta, type="Opaque",
            string_data={"AWS_ACCESS_KEY_ID": pulumi.Output.secret(args.access_key_id),
                         "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(args.secret_access_key)},
            opts=d.child(self))
        scripts = k8s.core.v1.ConfigMap(f"{name}-scripts", metadata=meta, data=SCRIPTS, opts=d.child(self))
        k8s.batch.v1.CronJob(
            f"{name}-cronjob", metadata=meta,
            spec={"schedule": args.schedule, "time_zone": "Etc/UTC", "concurrency_policy": "Forbid",
                  "starting_deadline_seconds": 3600,
                  "successful_jobs_history_limit": 3, "failed_jobs_history_limit": 3,
                  "job_template": {"metadata": {"labels": labels},
                                   "spec": {"backoff_limit": 1, "active_deadline_seconds": DEADLINE_S,
                                            "template": pod_template(args, labels)}}},
            opts=d.child(self, depends_on=[secret, scripts]))
        self.schedule = pulumi.Output.from_input(args.schedule)
        self.register_outputs({"schedule": self.schedule})
