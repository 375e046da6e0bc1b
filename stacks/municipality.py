"""The municipality program (stack ``<env>.<gm-code>``): one tenant with the apps it chose.

Maps the merged config (``cgkit.config.model.MunicipalityConfig``) onto the components:

=======================================  ==================================================
config                                   component input
=======================================  ==================================================
``code``                                 every component's ``code``; namespace ``gm0344``
``size``                                 ``TenantBaselineArgs.size`` (quota, limits), the tier
                                         of every app (multiplier, replicas, media size),
                                         PostgreSQL/Redis resources
``apps`` (enabled only)                  one ``CommonGroundApp`` each (catalog entry by key);
                                         ``replicas`` -> web replicas; the set of catalog
                                         specs -> ``TenantBaselineArgs.apps`` (NetworkPolicies)
``domain``                               ``CommonGroundAppArgs.domain`` (``<app>.<domain>``)
``database.mode == "in-cluster"``        ``Postgres`` (one database per app), apps connect to
                                         ``postgresql:5432``; ``database.storage`` -> volume
``database.mode == "external"``          no ``Postgres``; apps get ``host``/``port`` and
                                         ``PGSSLMODE``; ``TenantBaselineArgs.external_database``
``access.admins`` / ``access.viewers``   RoleBindings of the tenant roles
``auth.oidc``                            admin login of every app with the OIDC setup step
                                         (``wiring.Tenant.oidc``; secret ``oidc-client-secret``)
``environment.ingress.*``                Ingress class + cert-manager issuer; the controller
                                         namespace admitted by the web NetworkPolicies
``environment.storage_class``            media (RWX) and database/Redis volumes
``environment.cluster``                  the Kubernetes provider (``platform.provider``:
                                         sandbox, kubeconfig, context)
``environment.resources.requests_scale`` the tier's ``requests_scale``: every request scaled
``environment.images.sandbox_images``    apps, PostgreSQL and Redis run the sandbox's images
                                         (``cgkit.sandbox_images``) instead of the catalog's
``environment.observability``            the apps' ``OTEL_*`` settings (off without an
                                         endpoint); ``TenantBaselineArgs.otlp``: egress to
                                         exactly the collector (``cgkit.otlp``)
``backups`` (env + municipality)         ``Backup`` (CronJob, in-cluster database only);
                                         ``TenantBaselineArgs.backup_store``: the backup pods
                                         reach PostgreSQL and exactly the store
=======================================  ==================================================

Secrets come from stack config (``cgkit:<name>``, names from ``cgkit.secrets``), including one
per wiring edge (``components.wiring``: each app's setup document, passed as ``AppSetup``).
Exports: ``release`` (the catalog release deployed, ``components.releases``), ``namespace`` (str), ``urls`` (app key -> ``https://<app>.<domain>``), ``wiring``
(``"<consumer> -> <provider>"`` per edge) and ``unwired`` (edges dropped because the provider is
disabled).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from cgkit import sandbox_images, secrets
from cgkit.backups import store_destination
from components import _defaults as d
from components import releases, wiring
from components.app import AppDatabase, AppSetup, CommonGroundApp, CommonGroundAppArgs
from components.backup import Backup, BackupArgs
from components.backing import POSTGRES_IMAGE, Database, Postgres, PostgresArgs, Redis, RedisArgs
from components.catalog import AppSpec, Image, load_catalog
from components.sizing import Tier, tier
from components.tenant import ExternalDatabase, TenantBaseline, TenantBaselineArgs
from stacks.platform import provider, require_platform

#: PostgreSQL and Redis resources at size S; scaled by the tier multiplier like the apps.
_POSTGRES_RESOURCES = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
_BACKUP_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
_REDIS_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def enabled_apps(cfg: Any) -> list[AppSpec]:
    """The catalog entries of the apps ``cfg`` turns on, in catalog order."""
    catalog = load_catalog()
    unknown = sorted(set(cfg.apps) - set(catalog))
    if unknown:
        raise ValueError(f"municipality {cfg.code}: unknown app(s) {', '.join(unknown)}; "
                         f"the catalog has {', '.join(catalog)}")
    return [spec for key, spec in catalog.items() if key in cfg.apps]


def _scaled(res: dict[str, dict[str, str]], t: Tier) -> dict[str, dict[str, str]]:
    from components.catalog import Resources

    return d.resources(Resources.model_validate(res), t.multiplier, t.requests_scale)


def _with_sandbox_image(spec: AppSpec) -> AppSpec:
    """The catalog entry with its image replaced by the sandbox's stand-in (cgkit.sandbox_images)."""
    repository, tag = sandbox_images.ref("standin").rsplit(":", 1)
    return spec.model_copy(update={"image": Image(repository=repository, tag=tag)})


def _backup(cfg: Any, backups: Any, namespace: pulumi.Input[str], t: Tier, conf: pulumi.Config,
            opts: pulumi.ResourceOptions) -> Backup:
    """The tenant's scheduled backups (``components.backup``), with the sandbox's images there."""
    images = ({"postgres_image": sandbox_images.ref("postgis"), "awscli_image": sandbox_images.ref("awscli")}
              if cfg.environment.images.sandbox_images else {"postgres_image": POSTGRES_IMAGE})
    return Backup(f"{cfg.code.lower()}-backup", BackupArgs(
        code=cfg.code, environment=cfg.env, namespace=namespace,
        schedule=backups.schedule, keep_daily=backups.keep_daily, keep_weekly=backups.keep_weekly,
        endpoint=backups.endpoint, bucket=backups.bucket, region=backups.region,
        access_key_id=conf.require_secret(secrets.BACKUP_ACCESS_KEY_ID),
        secret_access_key=conf.require_secret(secrets.BACKUP_SECRET_ACCESS_KEY),
        work_size=cfg.database.storage, resources=_scaled(_BACKUP_RESOURCES, t), **images,
    ), opts=opts)


def deploy(cfg: Any, k8s_provider: k8s.Provider | None = None) -> None:
    """Declare the tenant of ``cfg`` and export ``namespace`` and ``urls``.

    ``k8s_provider`` replaces the provider built from ``cfg.environment.cluster`` (tests, render).
    """
    opts = pulumi.ResourceOptions(provider=k8s_provider or provider(cfg.environment))
    conf = pulumi.Config(secrets.CONFIG_NAMESPACE)
    env = cfg.environment
    apps = enabled_apps(cfg)
    if env.images.sandbox_images:
        apps = [_with_sandbox_image(a) for a in apps]
    t = tier(cfg.size).model_copy(update={"requests_scale": env.resources.requests_scale})
    backing_images = ({"image": sandbox_images.ref("postgis")}, {"image": sandbox_images.ref("redis")}) \
        if env.images.sandbox_images else ({}, {})
    backups = cfg.backups  # None for an external database (loader.merge)
    awaits = d.Awaits(job_s=env.awaits.job_s, rollout_s=env.awaits.rollout_s)
    code = cfg.code
    name = code.lower()

    external = None
    if cfg.database.mode == "external":
        external = ExternalDatabase(host=cfg.database.host, port=cfg.database.port,
                                    sslmode=cfg.database.sslmode)

    baseline = TenantBaseline(name, TenantBaselineArgs(
        code=code,
        size=cfg.size,
        apps=apps,
        ingress_namespace=env.ingress.controller_namespace,
        external_database=external,
        otlp=env.observability.destination,
        backup_store=store_destination(backups.endpoint) if backups else None,
        admins=list(cfg.access.admins),
        viewers=list(cfg.access.viewers),
    ), opts=opts)
    namespace = baseline.namespace
    after_baseline = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[baseline]))

    app_opts = after_baseline
    if external is None:
        postgres = Postgres(f"{name}-postgresql", PostgresArgs(
            code=code,
            namespace=namespace,
            admin_password=conf.require_secret(secrets.POSTGRES_ADMIN_PASSWORD),
            databases=[Database(a.key, conf.require_secret(secrets.db_password_name(a.key)), a.needs_postgis)
                       for a in apps],
            storage_size=cfg.database.storage,
            storage_class=env.storage_class,
            resources=_scaled(_POSTGRES_RESOURCES, t),
            awaits=awaits,
            **backing_images[0],
        ), opts=after_baseline)
        if backups is not None:
            _backup(cfg, backups, namespace, t, conf, after_baseline)
        # The apps (their migration Jobs first) start once their databases exist: before, they
        # would only crash-loop, and while they wait for readiness they hold the engine's
        # registration slots that the provisioning Job itself needs (seen on the real node:
        # a 10-minute stall).
        app_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[baseline, postgres]))
        db_host, db_port, sslmode = "postgresql", 5432, None
    else:
        db_host, db_port, sslmode = external.host, external.port, external.sslmode

    Redis(f"{name}-redis", RedisArgs(
        code=code, namespace=namespace, storage_class=env.storage_class,
        resources=_scaled(_REDIS_RESOURCES, t),
        awaits=awaits,
        **backing_images[1],
    ), opts=after_baseline)

    oidc = cfg.auth.oidc
    tenant = wiring.Tenant(code=code, name=cfg.name, namespace=cfg.namespace, domain=cfg.domain,
                           oidc=(oidc.discovery_endpoint, oidc.client_id) if oidc else None)
    urls: dict[str, pulumi.Output[str]] = {}
    for spec in apps:
        document, refs = wiring.setup_document(spec, apps, tenant)
        setup = AppSetup(document, {env: conf.require_secret(ref.secret).apply(ref.value) for env, ref in refs.items()})
        app = CommonGroundApp(f"{name}-{spec.key}", CommonGroundAppArgs(
            spec=spec,
            code=code,
            namespace=namespace,
            namespace_name=cfg.namespace,
            domain=cfg.domain,
            tier=t,
            database=AppDatabase(host=db_host, port=db_port, sslmode=sslmode),
            secret_key=conf.require_secret(secrets.secret_key_name(spec.key)),
            db_password=conf.require_secret(secrets.db_password_name(spec.key)),
            replicas=cfg.apps[spec.key].replicas,
            ingress_class=env.ingress.class_name,
            tls_issuer=env.ingress.tls_issuer,
            storage_class=env.storage_class,
            environment=cfg.env,
            otlp_endpoint=env.observability.otlp_endpoint,
            otlp_protocol=env.observability.protocol,
            setup=setup,
            awaits=awaits,
        ), opts=app_opts)
        urls[spec.key] = app.url

    pulumi.export("platform", require_platform(cfg.env, env))
    pulumi.export("release", releases.current().version)
    pulumi.export("namespace", namespace)
    pulumi.export("urls", urls)
    pulumi.export("wiring", [f"{e.consumer} -> {e.provider}" for e in wiring.edges(apps)])
    pulumi.export("unwired", [f"{e.consumer} -> {e.provider} ({e.provider} is not enabled)"
                              for e in wiring.dropped_edges(apps, load_catalog())])
