"""The Common Ground app catalog: ``catalog.yaml`` validated into :class:`AppSpec` models.

One entry per app; :class:`components.app.CommonGroundApp` builds any of them. The facts (images,
probes, settings modules, Celery roles, Redis DB numbers, resources) and their sources are noted in
``catalog.yaml`` itself. Adding an app is adding an entry: the model checks the entry is complete
and consistent (known dependencies, unique Redis DB numbers, quantities that parse).
"""

from __future__ import annotations

import functools
import string
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components._quantity import cpu_millis, memory_mib

#: Port every Maykin app's uWSGI listens on (all charts: ``containerPort: 8000``).
APP_PORT = 8000
#: Port the app's ClusterIP Service exposes (charts: Service 80 -> 8000).
SERVICE_PORT = 80
#: Redis ships 16 logical databases unless configured otherwise.
REDIS_DATABASES = 16
#: The placeholders an env template may name (filled per tenant by ``components.app.app_settings``).
ENV_PLACEHOLDERS = frozenset({
    "settings_module", "service", "namespace", "host", "environment", "db_host", "db_port", "db_name",
    "db_user", "sslmode", "redis", "cache_db", "celery_db", "email_host", "otel_disabled", "otlp_endpoint",
    "otlp_protocol"})


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a template string refers to (``"redis://{redis}/{celery_db}"`` -> both)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Image(_Model):
    """A container image pinned to a tag (never ``latest``)."""

    repository: str
    tag: str

    @field_validator("tag")
    @classmethod
    def _pinned(cls, tag: str) -> str:
        if tag in ("", "latest"):
            raise ValueError("pin the image to a release tag; 'latest' and empty tags are not allowed")
        return tag

    @property
    def ref(self) -> str:
        """``repository:tag``."""
        return f"{self.repository}:{self.tag}"


class Quantities(_Model):
    cpu: str
    memory: str

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        cpu_millis(v)
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        memory_mib(v)
        return v


class Resources(_Model):
    """Requests and limits for one container; limits must not be below requests."""

    requests: Quantities
    limits: Quantities

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "Resources":
        if cpu_millis(self.limits.cpu) < cpu_millis(self.requests.cpu):
            raise ValueError("limits.cpu is below requests.cpu")
        if memory_mib(self.limits.memory) < memory_mib(self.requests.memory):
            raise ValueError("limits.memory is below requests.memory")
        return self


class Probes(_Model):
    """HTTP probe paths of the web container (sent with ``Host: <service name>``).

    ``startup`` defaults to the readiness path when the chart has no startup probe.
    """

    startup: str | None = None
    liveness: str
    readiness: str

    @property
    def startup_path(self) -> str:
        return self.startup or self.readiness


class WebRole(_Model):
    resources: Resources


class CeleryRole(_Model):
    """A Celery worker or beat: same image, different entrypoint, exec health checks if the chart has them."""

    command: list[str]
    concurrency: int | None = None
    readiness: list[str] | None = None
    liveness: list[str] | None = None
    resources: Resources


class Roles(_Model):
    web: WebRole
    worker: CeleryRole | None = None
    beat: CeleryRole | None = None


class Redis(_Model):
    """Logical Redis databases (PodiumD shared-Redis table); ``celery_db`` only for apps with Celery."""

    cache_db: int = Field(ge=0, lt=REDIS_DATABASES)
    celery_db: int | None = Field(default=None, ge=0, lt=REDIS_DATABASES)


class Media(_Model):
    """A ReadWriteMany volume; ``mounts`` maps the subPath on the volume to the mount path in the container."""

    size: str
    mounts: dict[str, str]

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        memory_mib(v)
        return v


class Jobs(_Model):
    """The commands of an app's one-off Jobs, run in the app's image from its working directory."""

    migrate: list[str]
    setup: list[str]


class Api(_Model):
    """What an app serves to the other apps of the suite.

    ``auth``: ``zgw`` (clients sign a JWT with a client secret; the app knows the pair through
    ``step``, commonground-api-common's JWTSecretsConfigurationStep) or ``token`` (clients send
    ``Authorization: Token <token>``; ``step`` is the app's own TokenAuthConfigurationStep).
    ``services`` maps a zgw-consumers ``api_type`` to the API's path on the app's Service.
    """

    auth: Literal["zgw", "token"]
    step: str
    services: dict[str, str]


class AppSpec(_Model):
    """One Common Ground app as the catalog describes it."""

    key: str
    title: str
    image: Image
    settings_module: str
    port: int = APP_PORT
    probes: Probes
    database: Literal["postgresql", "postgis"]
    redis: Redis
    media: Media | None = None
    superuser_env_prefix: str | None = None
    depends_on: tuple[str, ...] = ()
    roles: Roles
    env: dict[str, str] = Field(default_factory=dict)
    """The app's env contract: the catalog's shared ``env`` templates with the entry's own on top."""
    jobs: Jobs
    api: Api | None = None
    """``None``: no other app calls this one."""
    kanalen: dict[str, list[str]] = Field(default_factory=dict)
    """Notification channels this app publishes (name -> filters)."""
    setup_steps: tuple[str, ...] = ()
    """The app's ``SETUP_CONFIGURATION_STEPS`` (django-setup-configuration step class paths)."""

    @model_validator(mode="after")
    def _api_step_is_registered(self) -> "AppSpec":
        if self.api is not None and self.api.step not in self.setup_steps:
            raise ValueError(f"{self.key}: api.step {self.api.step} is not one of its setup_steps")
        return self

    @field_validator("env")
    @classmethod
    def _known_placeholders(cls, env: dict[str, str]) -> dict[str, str]:
        for name, template in env.items():
            unknown = placeholders(template) - ENV_PLACEHOLDERS
            if unknown:
                raise ValueError(f"env {name}: unknown placeholder(s) {sorted(unknown)}; "
                                 f"known: {sorted(ENV_PLACEHOLDERS)}")
        return env

    @model_validator(mode="after")
    def _celery_needs_a_db(self) -> "AppSpec":
        has_celery = self.roles.worker is not None or self.roles.beat is not None
        if has_celery and self.redis.celery_db is None:
            raise ValueError(f"{self.key}: has Celery roles but no redis.celery_db")
        if not has_celery and self.redis.celery_db is not None:
            raise ValueError(f"{self.key}: redis.celery_db is set but the app has no Celery roles")
        return self

    @property
    def needs_postgis(self) -> bool:
        return self.database == "postgis"

    @property
    def celery_roles(self) -> dict[str, CeleryRole]:
        """``{"worker": ..., "beat": ...}`` for the roles the app has."""
        return {r: spec for r in ("worker", "beat") if (spec := getattr(self.roles, r)) is not None}


def parse_catalog(data: dict) -> dict[str, AppSpec]:
    """Validate a catalog mapping (as read from YAML) and check cross-entry consistency.

    ``data`` is ``{"env": {NAME: template}, "apps": {key: entry}}``; every app's ``env`` becomes the
    shared templates updated with its own. Raises ``ValueError`` (pydantic's ``ValidationError`` is
    one) naming the app and field of the first problem.
    """
    unknown = set(data) - {"env", "apps"}
    if unknown:
        raise ValueError(f"catalog: unknown top-level key(s) {sorted(unknown)}; expected 'env' and 'apps'")
    shared = dict(data.get("env") or {})
    apps = {key: AppSpec.model_validate({"key": key, **entry, "env": {**shared, **(entry.get("env") or {})}})
            for key, entry in data["apps"].items()}
    used: dict[int, str] = {}
    for app in apps.values():
        for dep in app.depends_on:
            if dep not in apps:
                raise ValueError(f"{app.key}: depends_on names {dep!r}, which is not in the catalog")
            if dep == app.key:
                raise ValueError(f"{app.key}: depends on itself")
            if apps[dep].api is None:
                raise ValueError(f"{app.key}: depends on {dep}, which serves no api (add one to its entry)")
        for db in (app.redis.cache_db, app.redis.celery_db):
            if db is None:
                continue
            if db in used:
                raise ValueError(f"{app.key}: Redis DB {db} is already used by {used[db]}")
            used[db] = app.key
    return apps


@functools.cache
def load_catalog() -> dict[str, AppSpec]:
    """Return the packaged catalog, keyed by app key (``"openzaak"``, ...), in file order."""
    text = resources.files("components").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(yaml.safe_load(text))
