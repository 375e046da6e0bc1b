"""Names of the secrets a municipality stack reads from its stack config (``cgkit:<name>``).

The municipality program reads each with ``pulumi.Config("cgkit").require_secret(name)``; the CLI
generates the missing ones (random, encrypted in ``Pulumi.<stack>.yaml``) before ``up``. Changing a
name here orphans the stored value, so names are part of the stack's contract.
"""

from __future__ import annotations

from typing import Any

#: Pulumi config namespace of every cgkit secret.
CONFIG_NAMESPACE = "cgkit"
POSTGRES_ADMIN_PASSWORD = "postgres-admin-password"


def secret_key_name(app: str) -> str:
    """Django ``SECRET_KEY`` of an app: ``"<app>-secret-key"``."""
    return f"{app}-secret-key"


def db_password_name(app: str) -> str:
    """Password of the app's database role: ``"<app>-db-password"``."""
    return f"{app}-db-password"


def secret_names(cfg: Any) -> list[str]:
    """Every secret stack-config key the municipality program of ``cfg`` requires, sorted.

    Per enabled app ``<app>-secret-key`` and ``<app>-db-password``; ``postgres-admin-password``
    when the database runs in the tenant (``database.mode == "in-cluster"``).
    """
    names = []
    for app in cfg.apps:
        names += [secret_key_name(app), db_password_name(app)]
    if cfg.database.mode == "in-cluster":
        names.append(POSTGRES_ADMIN_PASSWORD)
    return sorted(names)
