"""Names of the secrets a municipality stack reads from its stack config (``cgkit:<name>``).

The municipality program reads each with ``pulumi.Config("cgkit").require_secret(name)``; the CLI
generates the missing ones (random, encrypted in ``Pulumi.<stack>.yaml``) before ``up``. Changing a
name here orphans the stored value, so names are part of the stack's contract.
"""

from __future__ import annotations

from typing import Any

from cgkit.errors import InvalidArgumentError

#: Pulumi config namespace of every cgkit secret.
CONFIG_NAMESPACE = "cgkit"
POSTGRES_ADMIN_PASSWORD = "postgres-admin-password"
#: The client secret the municipality's OIDC provider issued (``auth.oidc``): set by the platform
#: team, never generated.
OIDC_CLIENT_SECRET = "oidc-client-secret"
#: The tenant's own credentials at the backup store (``backups``), allowed only the tenant's prefix:
#: made by the store's IAM (``cgkit backup grant`` on the sandbox's store), never generated.
BACKUP_ACCESS_KEY_ID = "backup-access-key-id"
BACKUP_SECRET_ACCESS_KEY = "backup-secret-access-key"
#: Why each provided secret is needed and who makes it: the sentence ``SecretNotSet`` shows.
PROVIDED_BECAUSE = {
    OIDC_CLIENT_SECRET: "the municipality file asks for OIDC login and the provider's client secret is set by hand",
    BACKUP_ACCESS_KEY_ID: "the environment backs the tenant's databases up, with credentials at the store that "
                          "may touch only the tenant's prefix",
    BACKUP_SECRET_ACCESS_KEY: "the environment backs the tenant's databases up, with credentials at the store that "
                              "may touch only the tenant's prefix",
}


def secret_key_name(app: str) -> str:
    """Django ``SECRET_KEY`` of an app: ``"<app>-secret-key"``."""
    return f"{app}-secret-key"


def db_password_name(app: str) -> str:
    """Password of the app's database role: ``"<app>-db-password"``."""
    return f"{app}-db-password"


def tenant_edges(cfg: Any) -> list[Any]:
    """The wiring edges (``components.wiring.Edge``) between the apps ``cfg`` enables, sorted."""
    from components.catalog import load_catalog  # the catalog is data owned by components/
    from components.wiring import edges

    catalog = load_catalog()
    return edges([spec for key, spec in catalog.items() if key in cfg.apps])


def secret_names(cfg: Any) -> list[str]:
    """Every secret stack-config key the municipality program of ``cfg`` requires, sorted.

    Per enabled app ``<app>-secret-key`` and ``<app>-db-password``; per wiring edge between two
    enabled apps ``<consumer>-to-<provider>-secret`` (the client secret or API token of that
    edge); ``postgres-admin-password`` when the database runs in the tenant
    (``database.mode == "in-cluster"``). Generated once by ``cgkit`` (engine.ensure_secrets), so
    they are stable across runs and distinct per tenant and per edge.
    """
    names = []
    for app in cfg.apps:
        names += [secret_key_name(app), db_password_name(app)]
    names += [edge.secret_name for edge in tenant_edges(cfg)]
    if cfg.database.mode == "in-cluster":
        names.append(POSTGRES_ADMIN_PASSWORD)
    return sorted(names)


def provided_secret_names(cfg: Any) -> list[str]:
    """The secret stack-config keys someone must set by hand (cgkit cannot generate them), sorted.

    ``oidc-client-secret`` when the municipality file has ``auth.oidc``; ``backup-access-key-id`` and
    ``backup-secret-access-key`` when the tenant is backed up (``cfg.backups``).
    """
    names = [OIDC_CLIENT_SECRET] if cfg.auth.oidc is not None else []
    if getattr(cfg, "backups", None) is not None:
        names += [BACKUP_ACCESS_KEY_ID, BACKUP_SECRET_ACCESS_KEY]
    return sorted(names)


#: What ``cgkit secrets rotate --what`` can rotate: kind -> the secret name of an app.
ROTATABLE = {"db-password": db_password_name, "secret-key": secret_key_name}


def rotation_names(cfg: Any, app: str | None = None, what: str | None = None) -> list[str]:
    """The stack-config secret names a rotation of ``cfg``'s tenant replaces, sorted.

    Args:
        cfg: the merged municipality config (its enabled ``apps`` and ``database.mode``).
        app: one enabled app's catalog key; None = every enabled app.
        what: a key of ROTATABLE; None = all of them.

    Raises:
        InvalidArgumentError: ``app`` is not enabled for the municipality, ``what`` is unknown, or
            a database password is asked for while the database is external (cgkit does not set the
            role's password there, so a new one would lock the app out).
    """
    apps = sorted(cfg.apps)
    if app is not None and app not in cfg.apps:
        raise InvalidArgumentError(f"--app '{app}' is not an enabled app of {cfg.code}",
                                   hint=f"one of: {', '.join(apps)}")
    if what is not None and what not in ROTATABLE:
        raise InvalidArgumentError(f"--what '{what}' cannot be rotated", hint=f"one of: {', '.join(ROTATABLE)}")
    kinds = [what] if what else list(ROTATABLE)
    if "db-password" in kinds and cfg.database.mode != "in-cluster":
        if what == "db-password":
            raise InvalidArgumentError(
                f"{cfg.code}'s database is external ({cfg.database.host}): cgkit does not set its roles' passwords",
                hint="change the role's password on that server; rotate --what secret-key here")
        kinds.remove("db-password")
    return sorted(ROTATABLE[kind](key) for kind in kinds for key in ([app] if app else apps))
