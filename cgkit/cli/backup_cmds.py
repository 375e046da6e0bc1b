"""``cgkit backup grant | now | list`` and ``cgkit restore``: a tenant's backups on demand.

The schedule runs in the cluster (components.backup); these commands act on one deployed tenant:

* ``backup grant`` makes the tenant's own account at the sandbox's object store, lets it touch only
  ``<env>/<code>/`` of the environment's bucket, and keeps its key in the stack config (encrypted).
  For another store the platform team makes the key with that store's IAM and sets it by hand.
* ``backup now`` runs the backup CronJob's Job at once and prints the backup's id and size.
* ``backup list`` reads the tenant's backups from the store, with the tenant's own key.
* ``restore`` restores a backup into fresh databases and checks every table's rows against the
  backup's manifest; ``--drill`` restores beside the live databases and drops the copies once
  checked (the BIO2 8.13 restore test), so it can run on a live tenant, and records the drill in
  the bucket (``backups.record_drill``).
"""

from __future__ import annotations

import json
import re
import secrets as random
from typing import Annotated, Any

import typer
from kubernetes import config as kube_config

from cgkit import backup_jobs, backups, engine, objectstore, sandbox
from cgkit.backups import BackupError
from cgkit.cli.console import err, out
from cgkit.cli.stack_cmds import Env
from cgkit.config import loader
from cgkit.config.model import MunicipalityConfig
from cgkit.conventions import stack_name
from cgkit.errors import InvalidArgumentError
from cgkit.gemeenten import lookup
from cgkit.node_manifests import NODE_IP
from cgkit.project import find_root
from cgkit.secrets import BACKUP_ACCESS_KEY_ID, BACKUP_SECRET_ACCESS_KEY, CONFIG_NAMESPACE
from cgkit.stackops import StackNotDeployed, engine_settings

backup_app = typer.Typer(help="A tenant's database backups: grant, now, list (restore: cgkit restore).",
                         no_args_is_help=True)
Code = Annotated[str, typer.Argument(help="The municipality's CBS code (GM0344).")]
#: An app database's name: an app's catalog key (components/catalog.yaml), as provisioning names it.
DATABASE_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}", re.ASCII)


def backed_up_config(code: str, env: str) -> MunicipalityConfig:
    """The tenant's config; it must be backed up.

    Raises:
        InvalidArgumentError: 'platform', or a tenant without backups (no store, external database).
    """
    if code.lower() == "platform":
        raise InvalidArgumentError("the platform stack holds no databases", hint="give a CBS code, such as GM0344")
    cfg = loader.load_municipality(find_root(), env, lookup(code).code)
    if cfg.backups is None and cfg.database.mode == "external":
        raise InvalidArgumentError(f"{cfg.code} is not backed up by cgkit: its database is external "
                                   f"({cfg.database.host})", hint="that database's own service backs it up")
    if cfg.backups is None:
        raise InvalidArgumentError(f"{cfg.code} is not backed up by cgkit: environment {env} has no backups section",
                                   hint=f"add backups (endpoint, bucket) to environments/{env}/environment.yaml")
    return cfg


def _stack(cfg: MunicipalityConfig) -> Any:
    root = find_root()
    settings = engine_settings(root, cfg.environment, cluster=False)
    stack = engine.existing_stack(settings, cfg.stack)
    if stack is None:
        raise StackNotDeployed(f"stack {cfg.stack} does not exist: the tenant was never deployed",
                               hint=f"cgkit up --env {cfg.env} {cfg.code}")
    return stack


def tenant_keys(cfg: MunicipalityConfig) -> tuple[str, str]:
    """The tenant's store key from its stack config.

    Raises:
        BackupError: the key was never set (no ``backup grant``, no ``pulumi config set``).
    """
    config = _stack(cfg).get_all_config()
    try:
        return (config[f"{CONFIG_NAMESPACE}:{BACKUP_ACCESS_KEY_ID}"].value,
                config[f"{CONFIG_NAMESPACE}:{BACKUP_SECRET_ACCESS_KEY}"].value)
    except KeyError:
        raise BackupError(f"stack {cfg.stack} has no backup credentials",
                          hint=f"cgkit backup grant --env {cfg.env} {cfg.code} (the sandbox's store)") from None


def tenant_s3(cfg: MunicipalityConfig) -> Any:
    """A boto3 S3 client for the environment's store with the tenant's own key (from its stack config)."""
    import boto3
    from botocore.config import Config

    access, secret = tenant_keys(cfg)
    return boto3.session.Session(aws_access_key_id=access, aws_secret_access_key=secret,
                                 region_name=cfg.backups.region).client(
        "s3", endpoint_url=cfg.backups.endpoint, config=Config(s3={"addressing_style": "path"}))


def tenant_api(cfg: MunicipalityConfig):
    """A Kubernetes API client for the tenant's cluster (the environment's, probed first)."""
    settings = engine_settings(find_root(), cfg.environment)  # asks the API server first
    return kube_config.new_client_from_config(config_file=str(settings.kubeconfig) if settings.kubeconfig else None)


def fail_with_log(result: backup_jobs.JobResult, what: str, cfg: MunicipalityConfig) -> None:
    """Show the Job's log (its last 60 lines) and raise the error its result names."""
    err.print("\n".join(result.log.rstrip().splitlines()[-60:]), markup=False, highlight=False, soft_wrap=True)
    raise BackupError(f"{what}: {result.failure}",
                      hint=f"its log is above; kubectl -n {cfg.namespace} get events")


def pod_endpoint(store: objectstore.ObjectStore) -> str:
    """The sandbox's store as the backup pods reach it: on the node's bridge."""
    return f"http://{NODE_IP}:{store.endpoint.rsplit(':', 1)[1]}"


@backup_app.command("grant")
def grant(code: Code, env: Env) -> None:
    """Give the tenant its own account at the sandbox's object store, allowed only its prefix."""
    cfg = backed_up_config(code, env)
    settings = cfg.backups
    store = objectstore.ObjectStore(sandbox.paths().objectstore)
    if not cfg.environment.cluster.sandbox or store.pid() is None:
        raise InvalidArgumentError(
            "cgkit makes store accounts only at the sandbox's own object store, and "
            + ("it is not running" if cfg.environment.cluster.sandbox else f"{env} is not the sandbox"),
            hint=("cgkit sandbox up --object-store" if cfg.environment.cluster.sandbox else
                  f"make a key that may touch only s3://{settings.bucket}/{backups.prefix(env, cfg.code)} with your "
                  f"store's IAM, then: pulumi config set --secret cgkit:{BACKUP_ACCESS_KEY_ID} … and "
                  f"cgkit:{BACKUP_SECRET_ACCESS_KEY} … -s {cfg.stack}"))
    ours = pod_endpoint(store)
    if settings.endpoint.rstrip("/") != ours:
        raise InvalidArgumentError(f"backups.endpoint {settings.endpoint} is not the sandbox's object store as the "
                                   f"pods reach it ({ours})",
                                   hint=f"set backups.endpoint to {ours} in environments/{env}/environment.yaml")
    root = find_root()
    engine_cfg = engine_settings(root, cfg.environment, cluster=False)
    with engine.stack_lock(root, cfg.stack):
        stack = engine.existing_stack(engine_cfg, cfg.stack) or engine.select_stack(engine_cfg, cfg.stack)
        config = stack.get_all_config()
        access = getattr(config.get(f"{CONFIG_NAMESPACE}:{BACKUP_ACCESS_KEY_ID}"), "value", None) \
            or f"{cfg.code.lower()}{random.token_hex(8)}"
        secret = getattr(config.get(f"{CONFIG_NAMESPACE}:{BACKUP_SECRET_ACCESS_KEY}"), "value", None) \
            or engine.new_secret()
        store.ensure_bucket(settings.bucket)
        store.create_account(access, secret)
        store.allow_prefix(settings.bucket, access, backups.prefix(env, cfg.code), sid=backups.policy_sid(env, cfg.code))
        stack.set_all_config({f"{CONFIG_NAMESPACE}:{BACKUP_ACCESS_KEY_ID}": engine.auto.ConfigValue(access, secret=True),
                              f"{CONFIG_NAMESPACE}:{BACKUP_SECRET_ACCESS_KEY}": engine.auto.ConfigValue(secret, secret=True)})
    out.print(f"{cfg.code} may write s3://{settings.bucket}/{backups.prefix(env, cfg.code)} and nothing else; its key "
              f"is in the stack config of {stack_name(env, cfg.code)} (encrypted)", highlight=False, soft_wrap=True)


@backup_app.command("now")
def now(code: Code, env: Env) -> None:
    """Back the tenant's databases up now (the CronJob's Job, run at once) and wait for it."""
    cfg = backed_up_config(code, env)
    result = backup_jobs.backup_now(tenant_api(cfg), cfg.namespace)
    if not result.succeeded:
        fail_with_log(result, f"the backup of {cfg.code} failed ({result.name})", cfg)
    backup_id, _, size = result.message.partition(" ")
    out.print(f"backed up {cfg.code}: {backup_id}, {size} bytes, in s3://{cfg.backups.bucket}/"
              f"{backups.prefix(env, cfg.code)}{backup_id}/", highlight=False, soft_wrap=True)


@backup_app.command("list")
def list_(code: Code, env: Env,
          as_json: Annotated[bool, typer.Option("--json", help="One JSON document: the backups and the incomplete ids.")]
          = False) -> None:
    """The tenant's backups in the store, oldest first (read with the tenant's own key)."""
    cfg = backed_up_config(code, env)
    s3 = tenant_s3(cfg)
    found, incomplete = backups.list_backups(s3, cfg.backups.bucket, env, cfg.code)
    drill = backups.last_drill(s3, cfg.backups.bucket, env, cfg.code)
    if as_json:
        out.print_json(json.dumps({"backups": [{"id": b.id, "created": b.created, "bytes": b.bytes, "rows": b.rows,
                                                "databases": [d["name"] for d in b.databases]} for b in found],
                                   "incomplete": incomplete, "last_drill": drill}))
        return
    for b in found:
        out.print(f"{b.id}  {b.bytes:>12} bytes  {b.rows:>9} rows  {', '.join(d['name'] for d in b.databases)}",
                  highlight=False, soft_wrap=True)
    for backup_id in incomplete:
        out.print(f"{backup_id}  incomplete (no manifest)", highlight=False)
    if not found and not incomplete:
        out.print(f"no backups of {cfg.code} yet", highlight=False)
    out.print(f"last restore drill: {drill['at']} of {drill['backup']}" if drill else "no restore drill yet",
              highlight=False)


def restore(code: Code, env: Env,
            backup_id: Annotated[str, typer.Option("--from", help="The backup's id (cgkit backup list).")],
            drill: Annotated[bool, typer.Option(help="Restore beside the live databases (<db>_drill), check, drop "
                                                     "the copies: safe on a live tenant.")] = False,
            database: Annotated[list[str] | None, typer.Option(help="Only this database (repeatable).")] = None) -> None:
    """Restore a backup into fresh databases and check every table's rows against its manifest.

    Without --drill a database of the backup's that exists is never overwritten: the restore stops,
    naming it."""
    cfg = backed_up_config(code, env)
    try:
        backups.check_id(backup_id)
    except ValueError as bad:
        raise InvalidArgumentError(f"--from {bad}", hint=f"cgkit backup list --env {env} {cfg.code}") from None
    odd = [name for name in database or () if not DATABASE_NAME.fullmatch(name)]
    if odd:
        raise InvalidArgumentError(f"--database {odd[0][:63]!r} is not a database name",
                                   hint=f"the databases are named after the apps, e.g. {', '.join(sorted(cfg.apps))}")
    result = backup_jobs.restore(tenant_api(cfg), cfg.namespace, backup_id, suffix="_drill" if drill else "",
                                 drill=drill, databases=tuple(dict.fromkeys(database or ())))
    if not result.succeeded:
        fail_with_log(result, f"the restore of {backup_id} into {cfg.code} failed", cfg)
    if drill:
        backups.record_drill(tenant_s3(cfg), cfg.backups.bucket, env, cfg.code, backup_id, result.message)
    verb = "drilled (restored, checked, dropped)" if drill else "restored"
    out.print(f"{verb} {backup_id} in {cfg.code}: {result.message.removeprefix('OK ')}", highlight=False, soft_wrap=True)
