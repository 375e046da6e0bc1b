"""``cgkit offboard``: export a municipality's records, verify the export, then delete its tenant.

The steps and what each proves are in cgkit/offboard.py. Nothing is deleted before the export has
been read back whole from the store; a run stopped before the destroy left the tenant as it was
(an export in the bucket, perhaps incomplete, and perhaps this machine's record in state exported)
and exports again when rerun. Once the destroy has begun (record state destroying) a rerun goes on
with it, with the stack or, once that is gone, from the record alone.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from kubernetes import client

from cgkit import backup_jobs, backups, engine, objectstore, offboard, sandbox
from cgkit.cli.backup_cmds import (Code, backed_up_config, fail_with_log, pod_endpoint, tenant_api, tenant_keys,
                                  tenant_s3)
from cgkit.cli.console import engine_line, err, out
from cgkit.cli.stack_cmds import Env, Yes, check_can_confirm, confirm
from cgkit.config.model import MunicipalityConfig
from cgkit.errors import CgkitError, InvalidArgumentError
from cgkit.project import find_root
from components._quantity import memory_mib
from components.backup import DEADLINE_S
from cgkit.stackops import RunOptions, StackNotDeployed, Verb, engine_settings, open_stack, run

#: How long the namespace may take to go once the stack is destroyed, in seconds.
GONE_TIMEOUT_S = 300.0
RetainUntil = Annotated[str, typer.Option(
    "--retain-until", metavar="YYYY-MM-DD", help="Keep the export until this day (the archivist's date from the "
    "Archiefwet selection list; recorded beside the export).")]


class OffboardIncomplete(CgkitError):
    """The tenant was destroyed but something of it is still there."""

    reference = "offboard-incomplete"


def offboard_cmd(code: Code, env: Env, retain_until: RetainUntil, yes: Yes = False) -> None:
    """Export every database and media volume, verify the export, then delete the tenant and prove it gone.

    The municipality's file moves to environments/<env>/offboarded/ with a record of the export."""
    cfg = backed_up_config(code, env)
    try:
        until = offboard.check_retain_until(retain_until)
    except ValueError as bad:
        raise InvalidArgumentError(f"--retain-until {bad}", hint="--retain-until 2046-12-31") from None
    _check_not_in_a_wave(cfg)
    check_can_confirm(yes, "offboard")
    root = find_root()
    settings = engine_settings(root, cfg.environment)
    core = client.CoreV1Api(tenant_api(cfg))
    record = offboard.read_record(root, env, cfg.code)
    destroying = record is not None and record["state"] == offboard.DESTROYING
    if engine.existing_stack(settings, cfg.stack) is not None:
        confirm(yes, "offboard", lambda: out.print(_plan(cfg, record if destroying else None), highlight=False,
                                                   soft_wrap=True))
        if not destroying:
            record = _export(cfg, core, until)
            offboard.set_state(root, env, cfg.code, offboard.DESTROYING)
        _destroy(cfg, core)
        _revoke(cfg, record["store_account"])
        engine.remove_stack(settings, cfg.stack)
    elif destroying:
        err.print(f"stack {cfg.stack} is gone already; finishing the offboarding of export {record['export_id']}",
                  highlight=False, soft_wrap=True)
        _revoke(cfg, record["store_account"])
    else:
        raise StackNotDeployed(
            f"stack {cfg.stack} does not exist and no offboarding of {cfg.code} was begun here "
            f"(environments/{env}/{offboard.OFFBOARDED}/): nothing to offboard",
            hint=f"its exports, if any, are under s3://{cfg.backups.bucket}/{offboard.export_prefix(env, cfg.code)}")
    _prove_gone(cfg, core, engine.existing_stack(settings, cfg.stack) is not None)
    moved = offboard.file_away(root, env, cfg.code)
    offboard.set_state(root, env, cfg.code, offboard.DONE)
    out.print(f"offboarded {cfg.code}: export {record['export_id']} ({record['bytes']} bytes) in {record['export']}, "
              f"kept until {record['retain_until']}; namespace, volumes and stack gone; its file is now "
              f"{moved.relative_to(root)}", highlight=False, soft_wrap=True)


def _plan(cfg: MunicipalityConfig, destroying: dict[str, Any] | None) -> str:
    """What the offboarding will do, for the question before it."""
    if destroying:
        return (f"the destroy of {cfg.stack} began after export {destroying['export_id']} was verified: this goes on "
                f"deleting every resource of the stack, records included")
    return (f"this exports {cfg.code}'s databases and media volumes to s3://{cfg.backups.bucket}/"
            f"{offboard.export_prefix(cfg.env, cfg.code)}, reads the export back, and then deletes every resource of "
            f"stack {cfg.stack}, records included")


def _check_not_in_a_wave(cfg: MunicipalityConfig) -> None:
    """Refuse a municipality the environment's waves name: once its file moved, every fleet command
    and `validate` would fail on the wave.

    Raises:
        InvalidArgumentError: a wave names it (the wave is named).
    """
    for i, wave in enumerate(cfg.environment.waves):
        if wave.municipalities != "rest" and cfg.code in wave.municipalities:
            raise InvalidArgumentError(
                f"{cfg.code} is in wave '{wave.name}' (waves[{i}] of environments/{cfg.env}/environment.yaml): "
                "offboarded, it would have no file and every fleet command would stop on that wave",
                hint=f"take {cfg.code} out of the wave first, then offboard it")


def _export(cfg: MunicipalityConfig, core: client.CoreV1Api, until: Any) -> dict[str, Any]:
    """Export, verify, record (state exported): the steps after which deleting the tenant loses nothing."""
    claims = core.list_namespaced_persistent_volume_claim(
        cfg.namespace, label_selector="app.kubernetes.io/component=media").items
    names = tuple(sorted(c.metadata.name for c in claims))
    media_mib = sum(memory_mib(c.spec.resources.requests["storage"]) for c in claims)
    err.print(f"exporting {cfg.code}: {len(cfg.apps)} database(s), {len(names)} media volume(s)", highlight=False, soft_wrap=True)
    result = backup_jobs.export(core.api_client, cfg.namespace, names, extra_work_mib=media_mib, timeout_s=DEADLINE_S)
    if not result.succeeded:
        fail_with_log(result, f"the export of {cfg.code} failed ({result.name}); nothing was deleted", cfg)
    export_id = result.message.split(" ", 1)[0]
    s3 = tenant_s3(cfg)
    export = offboard.verify_export(s3, cfg.backups.bucket, cfg.env, cfg.code, export_id,
                                    databases=set(cfg.apps), claims=set(names))
    record = offboard.retention_record(cfg.env, cfg.code, cfg.backups.bucket, export, until)
    offboard.record_retention(s3, cfg.backups.bucket, record)
    access, _ = tenant_keys(cfg)
    offboard.write_local_record(find_root(), record, store_account=access)
    err.print(f"export {export.id} verified: {len(export.files)} file(s), {export.bytes} bytes read back, sizes and "
              f"SHA-256 as the manifest says", highlight=False, soft_wrap=True)
    return {**record, "store_account": access}


def _destroy(cfg: MunicipalityConfig, core: client.CoreV1Api) -> None:
    """Destroy the stack, records included, after removing export Jobs left by an earlier run (their
    pods would hold the media claims)."""
    left = backup_jobs.delete_exports(core.api_client, cfg.namespace)
    if left:
        err.print(f"deleted export Job(s) left by an earlier run: {', '.join(left)}", highlight=False, soft_wrap=True)
    settings, stack = open_stack(cfg.env, cfg.code, Verb.DESTROY, notify=err.print)
    run(Verb.DESTROY, stack, settings, engine_line, RunOptions(allow_data_loss=True))


def _revoke(cfg: MunicipalityConfig, access: str) -> None:
    """Delete the tenant's account at the sandbox's store and its statements in the bucket policy
    (again on a rerun: both are idempotent); at another store, say that its key stays until that
    store's IAM removes it."""
    store = objectstore.ObjectStore(sandbox.paths().objectstore)
    if cfg.environment.cluster.sandbox and store.pid() is not None and \
            cfg.backups.endpoint.rstrip("/") == pod_endpoint(store):
        store.revoke_prefix(cfg.backups.bucket, backups.policy_sid(cfg.env, cfg.code))
        store.delete_account(access)
        err.print(f"deleted {cfg.code}'s account at the sandbox's store", highlight=False, soft_wrap=True)
    else:
        err.print(f"{cfg.code}'s key at {cfg.backups.endpoint} stays: remove it with that store's IAM", highlight=False, soft_wrap=True)


def _prove_gone(cfg: MunicipalityConfig, core: client.CoreV1Api, stack_exists: bool) -> None:
    """Wait for the namespace to go, free the tenant's released volumes, and check nothing is left.

    Raises:
        OffboardIncomplete: something of the tenant is still there after GONE_TIMEOUT_S (named).
    """
    deadline = time.monotonic() + GONE_TIMEOUT_S
    pool = sandbox.paths().volumes if cfg.environment.cluster.sandbox else None
    while offboard.remains(core, cfg.namespace, False) and time.monotonic() < deadline:
        freed = offboard.release_volumes(core, cfg.namespace, pool)
        if freed:
            err.print(f"freed volume(s) {', '.join(freed)}" + ("" if pool else
                      " (deleted; with reclaim policy Retain the storage behind them stays at its provider)"),
                      highlight=False, soft_wrap=True)
        time.sleep(2)
    left = offboard.remains(core, cfg.namespace, stack_exists)
    if left:
        raise OffboardIncomplete(f"{cfg.code} was destroyed but {', '.join(left)} remain(s)",
                                 hint=f"look at them (kubectl get ns,pv), then run cgkit offboard --env {cfg.env} "
                                      f"{cfg.code} again to finish")
