"""CommonGroundApp: any catalog app (Open Zaak, Open Notificaties, ...) in one tenant.

Built from an :class:`~components.catalog.AppSpec`, one instance creates (object names in brackets,
``<app>`` is the catalog key):

* ServiceAccount [``<app>``] without an automounted token; every pod of the app uses it;
* ConfigMap [``<app>``] with the plain settings and Secret [``<app>``] with ``SECRET_KEY`` and
  ``DB_PASSWORD`` (secret Outputs), both loaded with ``envFrom`` as the Maykin charts do;
* web Deployment [``<app>``]: uWSGI on 8000 with startup/liveness/readiness HTTP probes sent with
  ``Host: <app>`` (the Service name, which ``ALLOWED_HOSTS`` includes — as in the charts);
* Celery Deployments [``<app>-worker``, ``<app>-beat``] where the catalog has those roles; beat is
  always one replica with the ``Recreate`` strategy so two schedulers never overlap;
* Service [``<app>``] ClusterIP 80 -> 8000, Ingress [``<app>``] for ``https://<app>.<domain>`` with TLS
  (certificate by the cert-manager cluster issuer; awaited until it has an address), PodDisruptionBudget [``<app>``] (minAvailable 1)
  when web has two or more replicas, and a ReadWriteMany media PVC [``<app>-media``] where the
  catalog asks for one;
* migration Job [``<app>-migrate-<hash>``] running the catalog's ``jobs.migrate`` once per release
  (the hash covers image, command, resources and settings), awaited by the engine; every
  Deployment depends on it, so no replica starts a release before its schema is migrated;
* with a setup document (``args.setup``): Secret [``<app>-setup``] holding ``setup.yaml`` and the
  values it references (``value_from: {env: NAME}``), and setup Job [``<app>-setup-<hash>``]
  running ``jobs.setup`` (``manage.py setup_configuration``) after the migration Job; the
  Deployments wait for it too. A failed Job is replaced on the next ``up``
  (``pulumi.com/replaceUnready``).

Every container of the app (Deployments and Jobs) gets ``OTEL_RESOURCE_ATTRIBUTES`` naming it
(``<app>-<role>``, tenant namespace, CBS code, environment: :func:`telemetry_env`); whether its
OpenTelemetry SDK exports, and where to, is in the ConfigMap (``OTEL_SDK_DISABLED``,
``OTEL_EXPORTER_OTLP_*`` from the catalog's env contract and ``args.otlp_endpoint``).

Pod templates carry ``cgkit.io/config-checksum`` (of the ConfigMap data) and
``cgkit.io/secret-digest`` (a digest of ``SECRET_KEY`` and ``DB_PASSWORD``, never the values), so a
changed setting or a rotated secret (``cgkit secrets rotate``) rolls the pods.

Every pod: ``runAsNonRoot``, UID/GID 1000 and ``fsGroup`` 1000 (charts' ``podSecurityContext``),
``seccompProfile: RuntimeDefault``, no privilege escalation, ALL capabilities dropped, requests and
limits on every container, ``enableServiceLinks: false`` (service links inject e.g.
``OPENZAAK_PORT=tcp://…``, which breaks uWSGI — research §2.2). The root filesystem stays writable as in
the charts (``readOnlyRootFilesystem: false``): the images write to ``/app/tmp`` and ``/app/log``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from cgkit import otlp
from components import _defaults as d
from components._quantity import memory_mib, format_memory
from components.backing import REDIS_PORT
from components.catalog import SERVICE_PORT, AppSpec, placeholders
from components.sizing import Tier

_UID = 1000


@dataclass(frozen=True)
class AppDatabase:
    """Where the app's database lives. ``sslmode`` becomes ``PGSSLMODE`` when set (external servers)."""

    host: str
    port: int = 5432
    name: str | None = None
    """Database name; default: the app key."""
    user: str | None = None
    """Role name; default: the app key."""
    sslmode: str | None = None


@dataclass(frozen=True)
class CommonGroundAppArgs:
    """Inputs of :class:`CommonGroundApp`."""

    spec: AppSpec
    code: str
    """CBS code, for labels."""
    namespace: pulumi.Input[str]
    namespace_name: str
    """The namespace as a plain string (for ``ALLOWED_HOSTS``); must equal ``namespace``."""
    domain: str
    """The app is served at ``https://<app>.<domain>``."""
    tier: Tier
    database: AppDatabase
    secret_key: pulumi.Input[str]
    db_password: pulumi.Input[str]
    redis_host: str = "redis"
    replicas: int | None = None
    """Web replicas; default: the tier's ``web_replicas``."""
    ingress_class: str | None = None
    """``spec.ingressClassName``; ``None`` leaves it to the cluster's default class."""
    tls_issuer: str | None = None
    """cert-manager ClusterIssuer; adds ``cert-manager.io/cluster-issuer`` when set."""
    storage_class: str | None = None
    """ReadWriteMany storage class for the media volume; ``None`` uses the cluster default."""
    email_host: str = "localhost"
    """SMTP host (``EMAIL_HOST``); Open Zaak requires it to be set on Docker deployments."""
    environment: str = ""
    """Shown by the apps as ``ENVIRONMENT`` (e.g. ``"sandbox"``)."""
    otlp_endpoint: str | None = None
    """The OpenTelemetry collector (``OTEL_EXPORTER_OTLP_ENDPOINT``); ``None``: the SDK is off."""
    otlp_protocol: str = "http/protobuf"
    """``OTEL_EXPORTER_OTLP_PROTOCOL`` (``grpc`` or ``http/protobuf``), set with an endpoint only."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """Extra plain settings, merged last into the ConfigMap."""
    setup: "AppSetup | None" = None
    """The app's django-setup-configuration document and its secrets; ``None``: no setup Job."""
    awaits: d.Awaits = d.Awaits()
    """How long the engine awaits the app's Jobs and rollouts (the environment's ``awaits:``)."""


@dataclass(frozen=True)
class AppSetup:
    """What the setup Job applies (``components.wiring.setup_document`` makes the document).

    ``document`` is plain data without secret values (they are ``value_from: {env: NAME}``);
    ``secrets`` gives each ``NAME`` its value (secret Outputs), put into the Secret
    ``<app>-setup`` next to ``setup.yaml``.
    """

    document: dict[str, Any]
    secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)


#: Mount path of the setup document; the catalog's ``jobs.setup`` command names the file in it.
SETUP_DIR = "/config"


def hostname(spec: AppSpec, domain: str) -> str:
    """Public host of an app: ``openzaak.<domain>``."""
    return f"{spec.key}.{domain}"


def app_settings(args: CommonGroundAppArgs) -> dict[str, str]:
    """The ConfigMap data of an app (plain settings only; secrets go to the Secret).

    Renders the catalog's env contract (``AppSpec.env``, templates in components/catalog.yaml) for
    this tenant; an entry naming a placeholder that is unset here (``sslmode`` for the in-tenant
    database, ``celery_db`` for an app without Celery, ``otlp_*`` without a collector) is left out.
    ``extra_env`` is merged last.
    """
    spec = args.spec
    db = args.database
    values: dict[str, object | None] = {
        "settings_module": spec.settings_module,
        "service": spec.key,
        "namespace": args.namespace_name,
        "host": hostname(spec, args.domain),
        "environment": args.environment,
        "db_host": db.host,
        "db_port": db.port,
        "db_name": db.name or spec.key,
        "db_user": db.user or spec.key,
        "sslmode": db.sslmode or None,
        "redis": f"{args.redis_host}:{REDIS_PORT}",
        "cache_db": spec.redis.cache_db,
        "celery_db": spec.redis.celery_db,
        "email_host": args.email_host,
        "otel_disabled": "false" if args.otlp_endpoint else "true",
        "otlp_endpoint": args.otlp_endpoint,
        "otlp_protocol": args.otlp_protocol if args.otlp_endpoint else None,
    }
    env = {name: template.format(**values) for name, template in spec.env.items()
           if all(values[p] is not None for p in placeholders(template))}
    env.update(args.extra_env)
    return env


def telemetry_env(args: CommonGroundAppArgs, role: str) -> list[dict[str, str]]:
    """The container ``env`` that names one role of the app in its telemetry:
    ``OTEL_RESOURCE_ATTRIBUTES`` with ``service.name=<app>-<role>``, the tenant namespace, the CBS
    code and the environment (``cgkit.otlp.resource_attributes``). Set whether or not the SDK is on:
    the attributes say who a container is, the ConfigMap whether and where it exports."""
    return [{"name": "OTEL_RESOURCE_ATTRIBUTES", "value": otlp.resource_attributes(
        service=f"{args.spec.key}-{role}", namespace=args.namespace_name, code=args.code,
        environment=args.environment)}]


class CommonGroundApp(pulumi.ComponentResource):
    """One Common Ground app (web + Celery roles) from its catalog entry.

    Outputs: ``url`` (``https://<app>.<domain>``), ``service_name`` (``<app>``).
    """

    url: pulumi.Output[str]
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: CommonGroundAppArgs, opts: pulumi.ResourceOptions | None = None):
        d.require_provider("CommonGroundApp", name, opts)
        super().__init__("cgkit:app:CommonGroundApp", name, None, opts)
        self._prefix = name
        spec, t = args.spec, args.tier
        key = spec.key
        ns = args.namespace
        host = hostname(spec, args.domain)
        web_replicas = args.replicas if args.replicas is not None else t.web_replicas
        if web_replicas < 1:
            raise ValueError(f"Unable to create CommonGroundApp '{name}': replicas must be at least 1; "
                             f"got {web_replicas}")

        def meta(obj: str, component: str = "web", **extra: Any) -> dict[str, Any]:
            return {"name": obj, "namespace": ns, "labels": d.labels(args.code, key, component), **extra}

        settings = app_settings(args)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=meta(key, "config"), data=settings, opts=d.child(self))
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret", metadata=meta(key, "config"), type="Opaque",
            string_data={"SECRET_KEY": pulumi.Output.secret(args.secret_key),
                         "DB_PASSWORD": pulumi.Output.secret(args.db_password)},
            opts=d.child(self))
        self.service_account = d.service_account(f"{name}-sa", meta(key, "web"), self)

        self.media: k8s.core.v1.PersistentVolumeClaim | None = None
        mounts: list[dict[str, str]] = []
        volumes: list[dict[str, Any]] = []
        if spec.media is not None:
            size = format_memory(memory_mib(spec.media.size) * t.storage_factor)
            self.media = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-media", metadata=meta(f"{key}-media", "media"),
                spec={"access_modes": ["ReadWriteMany"],
                      **({"storage_class_name": args.storage_class} if args.storage_class else {}),
                      "resources": {"requests": {"storage": size}}},
                opts=d.holds_data(self))
            mounts = [{"name": "media", "mount_path": path, "sub_path": sub}
                      for sub, path in spec.media.mounts.items()]
            volumes = [{"name": "media", "persistent_volume_claim": {"claim_name": f"{key}-media"}}]

        env_from = [{"config_map_ref": {"name": key}}, {"secret_ref": {"name": key}}]
        checksum = d.checksum(settings)
        secret_digest = d.secret_digest_of([args.secret_key, args.db_password])  # rotation rolls the pods
        # Not the media claim: with a WaitForFirstConsumer storage class the claim binds only once a
        # pod uses it, so waiting for it before creating the Deployment would never finish.
        depends = [self.config_map, self.secret, self.service_account]

        def pod(component: str, container: dict[str, Any]) -> dict[str, Any]:
            return {
                "metadata": {"labels": d.labels(args.code, key, component),
                             "annotations": {"cgkit.io/config-checksum": checksum,
                                             "cgkit.io/secret-digest": secret_digest}},
                "spec": d.pod_spec(key, _UID, [{
                    "image": spec.image.ref,
                    "image_pull_policy": "IfNotPresent",
                    "env_from": env_from,
                    "volume_mounts": mounts,
                    **container,
                    "env": [*telemetry_env(args, component), *container.get("env", [])],
                }], read_only_root=False, volumes=volumes),
            }

        def http_probe(path: str, **timing: int) -> dict[str, Any]:
            return {"http_get": {"path": path, "port": "http",
                                 "http_headers": [{"name": "Host", "value": key}]},
                    "timeout_seconds": 5, **timing}

        web_container = {
            "name": "web",
            "ports": [{"name": "http", "container_port": spec.port, "protocol": "TCP"}],
            "resources": d.resources(spec.roles.web.resources, t.multiplier, t.requests_scale),
            # Startup covers migrations on first boot: up to 10 minutes before liveness takes over.
            "startup_probe": http_probe(spec.probes.startup_path, period_seconds=10, failure_threshold=60),
            "liveness_probe": http_probe(spec.probes.liveness, period_seconds=10, failure_threshold=3),
            "readiness_probe": http_probe(spec.probes.readiness, period_seconds=10, failure_threshold=3),
        }
        # Migrations once per release: a Job named after what it runs, awaited by the engine (no
        # await skipped), before any Deployment rolls. A new image or new settings is a new Job.
        self.migration = self._job("migrate", args, settings, list(spec.jobs.migrate), env_from,
                                   depends_on=depends, meta=meta)
        depends = [*depends, self.migration]
        self.setup_secret: k8s.core.v1.Secret | None = None
        self.setup_job: k8s.batch.v1.Job | None = None
        if args.setup is not None and args.setup.document:
            document = yaml.safe_dump(args.setup.document, sort_keys=False)
            self.setup_secret = k8s.core.v1.Secret(
                f"{name}-setup-secret", metadata=meta(f"{key}-setup", "setup"), type="Opaque",
                string_data={"setup.yaml": document,
                             **{env: pulumi.Output.secret(v) for env, v in sorted(args.setup.secrets.items())}},
                opts=d.child(self))
            self.setup_job = self._job(
                "setup", args, {"setup.yaml": document}, list(spec.jobs.setup), env_from,
                depends_on=[self.migration, self.setup_secret], meta=meta,
                env=[{"name": env, "value_from": {"secret_key_ref": {"name": f"{key}-setup", "key": env}}}
                     for env in sorted(args.setup.secrets)],
                mounts=[{"name": "setup", "mount_path": SETUP_DIR, "read_only": True}],
                volumes=[{"name": "setup", "secret": {"secret_name": f"{key}-setup",
                                                      "items": [{"key": "setup.yaml", "path": "setup.yaml"}]}}])
            depends = [*depends, self.setup_job]

        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}
        self.deployments["web"] = k8s.apps.v1.Deployment(
            f"{name}-web", metadata=meta(key, "web", annotations=args.awaits.rollout()),
            spec={"replicas": web_replicas, "selector": {"match_labels": d.selector(key, "web")},
                  "template": pod("web", web_container)},
            opts=d.child(self, depends_on=depends))

        for role, rspec in spec.celery_roles.items():
            container: dict[str, Any] = {
                "name": role,
                "command": list(rspec.command),
                "resources": d.resources(rspec.resources, t.multiplier if role == "worker" else 1.0,
                                         t.requests_scale),
            }
            if rspec.concurrency is not None:
                container["env"] = [{"name": "CELERY_WORKER_CONCURRENCY", "value": str(rspec.concurrency)}]
            if rspec.readiness:
                container["readiness_probe"] = {"exec": {"command": list(rspec.readiness)},
                                                "period_seconds": 30, "timeout_seconds": 10}
            if rspec.liveness:
                container["liveness_probe"] = {"exec": {"command": list(rspec.liveness)},
                                               "initial_delay_seconds": 60, "period_seconds": 60,
                                               "timeout_seconds": 10, "failure_threshold": 3}
            deployment_spec: dict[str, Any] = {
                "replicas": t.worker_replicas if role == "worker" else 1,
                "selector": {"match_labels": d.selector(key, role)},
                "template": pod(role, container),
            }
            if role == "beat":
                deployment_spec["strategy"] = {"type": "Recreate"}
            self.deployments[role] = k8s.apps.v1.Deployment(
                f"{name}-{role}", metadata=meta(f"{key}-{role}", role, annotations=args.awaits.rollout()),
                spec=deployment_spec,
                opts=d.child(self, depends_on=depends))

        self.service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta(key, "web"),
            spec={"type": "ClusterIP", "selector": d.selector(key, "web"),
                  "ports": [{"name": "http", "port": SERVICE_PORT, "target_port": "http", "protocol": "TCP"}]},
            opts=d.child(self))

        # Awaited, as every resource of the product: the Ingress is ready once the controller gave it
        # an address. Provider 4.25's Ingress awaiter may, after an update, take the pre-update object
        # from its informer cache as "ready" and record it as state (read in its await code, never
        # reproduced here: tests/integration/test_converge.py flips a domain three times); the
        # refresh before every up puts such a state right.
        annotations = {"cert-manager.io/cluster-issuer": args.tls_issuer} if args.tls_issuer else {}
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress", metadata=meta(key, "web", annotations=annotations),
            spec={
                **({"ingress_class_name": args.ingress_class} if args.ingress_class else {}),
                "tls": [{"hosts": [host], "secret_name": f"{key}-tls"}],
                "rules": [{"host": host, "http": {"paths": [{
                    "path": "/", "path_type": "Prefix",
                    "backend": {"service": {"name": key, "port": {"number": SERVICE_PORT}}},
                }]}}],
            },
            opts=d.child(self, depends_on=[self.service]))

        self.pdb: k8s.policy.v1.PodDisruptionBudget | None = None
        if web_replicas >= 2:
            self.pdb = k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb", metadata=meta(key, "web"),
                spec={"min_available": 1, "selector": {"match_labels": d.selector(key, "web")}},
                opts=d.child(self))

        self.url = pulumi.Output.from_input(f"https://{host}")
        self.service_name = self.service.metadata.apply(lambda m: m["name"] if isinstance(m, dict) else m.name)
        self.register_outputs({"url": self.url, "service_name": self.service_name})

    def _job(self, task: str, args: CommonGroundAppArgs, inputs: dict[str, str], command: list[str],
             env_from: list[dict[str, Any]], *, depends_on: list[pulumi.Resource], meta: Any,
             env: list[dict[str, Any]] | None = None, mounts: list[dict[str, Any]] | None = None,
             volumes: list[dict[str, Any]] | None = None) -> k8s.batch.v1.Job:
        """A one-off Job ``<app>-<task>-<hash>`` in the app's image, awaited by the engine.

        The hash covers the whole pod template and ``inputs`` (the settings, or the setup
        document), so a new image tag, command, resource figure or setting is a new Job and an
        unchanged one is left alone. A Job that failed is replaced on the next ``up``
        (``pulumi.com/replaceUnready``), which is the retry.
        """
        spec, key = args.spec, args.spec.key
        labels = d.labels(args.code, key, task)
        template = {
            "metadata": {"labels": labels},
            "spec": d.pod_spec(key, _UID, [{
                "name": task,
                "image": spec.image.ref,
                "image_pull_policy": "IfNotPresent",
                "command": command,
                "env_from": env_from,
                "env": [*telemetry_env(args, task), *(env or [])],
                "resources": d.resources(spec.roles.web.resources, args.tier.multiplier, args.tier.requests_scale),
                "volume_mounts": mounts or [],
            }], read_only_root=False, restart_policy="Never", volumes=volumes or []),
        }
        digest = d.checksum({"template": template, "inputs": inputs})[:10]
        return k8s.batch.v1.Job(
            f"{self._prefix}-{task}",
            metadata=meta(f"{key}-{task}-{digest}", task,
                          annotations={**args.awaits.job(), "pulumi.com/replaceUnready": "true"}),
            # Kubernetes' default of 6 retries (10 s, 20 s, 40 s ... apart, about 5 minutes): a new
            # pod is admitted by the NetworkPolicy enforcer only once it has synced it (seen on the
            # real node: refused connections for tens of seconds at start), and the database may
            # be restarting; a migration that fails for its own reasons fails 6 times the same.
            spec={"backoff_limit": 6, "template": template},
            opts=d.child(self, depends_on=depends_on, delete_before_replace=True))
