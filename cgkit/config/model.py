"""The typed model of cgkit's config files, and the merged config one municipality stack runs on.

Two files, layered over kit defaults (DESIGN.md decision 1)::

    kit defaults  <-  environments/<env>/environment.yaml  <-  environments/<env>/municipalities/<code>.yaml

``EnvironmentFile`` and ``MunicipalityFile`` describe the files as written (strict: no unknown keys,
no numbers where text is expected); ``MunicipalityConfig`` is the merged, resolved result that the
program and the CLI use. The JSON Schemas in environments/schema/ are generated from the two file
models (``cgkit schema``). Two parts are the policy pack's own models, used here as they are: the
environment's ``policy:`` section (`PolicySettings`) and a municipality's ``waivers`` (`Waiver`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from cgkit import backups, otlp, state, urls
from cgkit.conventions import DNS_LABEL_PATTERN, is_builtin_identity, tenant_namespace
from policies.config import PolicySettings
from policies.waivers import CHECK_ERROR, Waiver  # CHECK_ERROR: the error type of cgkit's own field checks

Size = Literal["S", "M", "L", "XL"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
CbsCode = Annotated[str, StringConstraints(pattern=r"^GM\d{4}$")]
AppKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]


def _not_builtin_identity(name: str) -> str:
    """Refuse Kubernetes' own groups (``system:authenticated`` is every user of the cluster)."""
    if is_builtin_identity(name):
        raise PydanticCustomError(CHECK_ERROR, "'{name}' is a built-in Kubernetes identity (every user, every "
                                  "anonymous request, every service account or the cluster admins); name the "
                                  "municipality's own group from the identity provider, e.g. utrecht-platform-admins",
                                  {"name": name})
    return name


GroupName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"),
                      AfterValidator(_not_builtin_identity)]
#: Kubernetes object names (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/):
#: an RFC 1123 label (namespaces; `DNS_LABEL_PATTERN` in cgkit.conventions) and an RFC 1123 subdomain (IngressClass, StorageClass, ClusterIssuer).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A controller or provisioner name: a DNS subdomain, optionally followed by /path (``k8s.io/ingress-nginx``,
#: ``kubernetes.io/no-provisioner``, ``ebs.csi.aws.com``).
QUALIFIED_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[A-Za-z0-9]([-A-Za-z0-9._/]*[A-Za-z0-9])?)?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[str, StringConstraints(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
QualifiedName = Annotated[str, StringConstraints(max_length=250, pattern=QUALIFIED_PATTERN)]
#: A DNS domain of at least two labels, lower case; apps are served at ``<app>.<domain>``.
DOMAIN_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Domain = Annotated[str, StringConstraints(max_length=200, pattern=DOMAIN_PATTERN)]
Registry = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*$")]

DOMAIN_HINT = "a lower-case DNS name of at least two labels, e.g. utrecht.sandbox.cgkit.test"


class _Strict(BaseModel):
    """Base of every config model: unknown keys are errors, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---------------------------------------------------------------------------------------------
# The environment file


class ClusterSettings(_Strict):
    """How to reach the environment's cluster.

    ``sandbox: true`` targets the local sandbox cluster (``cgkit sandbox up``); otherwise
    ``kubeconfig``/``context`` name the cluster, and both None mean the ambient kubeconfig.
    """

    sandbox: bool = Field(False, description="Deploy to the local sandbox cluster (cgkit sandbox up).")
    kubeconfig: str | None = Field(None, description="Path of a kubeconfig file; None = ambient.")
    context: str | None = Field(None, description="Context in that kubeconfig; None = its current one.")


class IngressSettings(_Strict):
    """The shared ingress controller the tenants' Ingresses attach to (created by the platform stack)."""

    class_name: DnsSubdomain = Field(description="IngressClass name, e.g. 'cgkit-sandbox'.")
    controller: QualifiedName = Field(description="The IngressClass's controller, e.g. 'k8s.io/ingress-nginx'.")
    controller_namespace: DnsLabel = Field(description="Namespace of the ingress controller pods; "
                                           "tenant NetworkPolicies admit web traffic from it.")
    tls_issuer: DnsSubdomain | None = Field(None, description="cert-manager ClusterIssuer for the apps' "
                                   "certificates; None = no issuer annotation.")


class ImageSettings(_Strict):
    """Where images may come from."""

    allowed_registries: list[Registry] = Field(
        min_length=1, description="Registries (host[/path]) images may be pulled from, e.g. docker.io."
    )
    sandbox_images: bool = Field(False, description="Run the images `cgkit sandbox up` builds from "
                                 "Debian packages (cgkit.sandbox/*: PostgreSQL/PostGIS, Redis and a "
                                 "stand-in per app that honours the app's env contract and probes) "
                                 "instead of the catalog's; only where cluster.sandbox is true.")


class ResourceSettings(_Strict):
    """How much of the catalog's resource figures this environment's cluster reserves."""

    requests_scale: float = Field(1.0, gt=0.0, le=1.0, description="Factor on every container's "
                                  "CPU and memory *requests* (limits unchanged). 1.0 in production; "
                                  "the sandbox's one real node has 2 cores, so it uses 0.1.")


def _checked(check):
    """An AfterValidator that turns ``check``'s ValueError into a field error with its sentence."""
    def validate(value: str) -> str:
        try:
            return check(value)
        except ValueError as err:
            raise PydanticCustomError(CHECK_ERROR, "{reason}", {"reason": str(err)}) from None
    return AfterValidator(validate)


def _otlp_endpoint(endpoint: str) -> str:
    """Refuse an endpoint a NetworkPolicy cannot name exactly (``cgkit.otlp.destination``)."""
    otlp.destination(endpoint)
    return endpoint


OtlpEndpoint = Annotated[str, StringConstraints(max_length=300), _checked(_otlp_endpoint)]


class ObservabilitySettings(_Strict):
    """Where the apps send their telemetry (OpenTelemetry, OTLP). Without an endpoint the apps'
    SDK is off (``OTEL_SDK_DISABLED=true``), as in the apps' own charts."""

    otlp_endpoint: OtlpEndpoint | None = Field(
        None, description="The OTLP collector, http(s)://<host>:<port>: a cluster Service "
        "(<service>.<namespace>.svc) or an IP address, e.g. http://otel-collector.observability.svc:4318. "
        "Tenants may reach exactly this port there. None = telemetry off.")
    protocol: Literal["grpc", "http/protobuf"] = Field(
        "http/protobuf", description="OTLP wire protocol (OTEL_EXPORTER_OTLP_PROTOCOL); the apps speak "
        "grpc (port 4317) and http/protobuf (port 4318).")

    @model_validator(mode="after")
    def _protocol_needs_an_endpoint(self) -> ObservabilitySettings:
        """A protocol without an endpoint would leave telemetry off without a word."""
        if "protocol" in self.model_fields_set and not self.otlp_endpoint:
            raise PydanticCustomError(CHECK_ERROR, "protocol {protocol} without otlp_endpoint: telemetry stays "
                                      "off; add otlp_endpoint (e.g. {example}) or remove protocol",
                                      {"protocol": self.protocol, "example": otlp.EXAMPLE})
        return self

    @property
    def destination(self) -> otlp.Destination | None:
        """The endpoint's NetworkPolicy peer and port; None when telemetry is off."""
        return otlp.destination(self.otlp_endpoint) if self.otlp_endpoint else None


class AwaitSettings(_Strict):
    """How long the engine waits for what an ``up`` starts before it calls the ``up`` failed: the
    Kubernetes provider's ``pulumi.com/timeoutSeconds`` annotation on each Job and workload (its own
    defaults: 10 minutes). The sandbox sets them short, so that a Job or a rollout that cannot
    finish (a lost node, an image that is not there) fails the run in minutes."""

    job_s: int = Field(1800, ge=60, le=86400, description="Seconds for a migration, setup or "
                       "provisioning Job to complete (a large database's first migration takes a while).")
    rollout_s: int = Field(600, ge=60, le=86400, description="Seconds for a Deployment or StatefulSet "
                           "to roll out: every replica updated and Ready.")


BackendUrl = Annotated[str, StringConstraints(max_length=1000), _checked(state.check_backend)]
SecretsProvider = Annotated[str, StringConstraints(max_length=1000), _checked(state.check_secrets_provider)]


class StateSettings(_Strict):
    """Where this environment's Pulumi state lives and what encrypts its stacks' secrets
    (``cgkit.state``). Without the section: the project's file backend and a passphrase."""

    backend: BackendUrl | None = Field(
        None, description="Pulumi state backend URL: file://<path> (relative to the project root), "
        "s3://<bucket>?region=...[&endpoint=https://...&use_path_style=true], azblob://<container> or "
        "gs://<bucket>; no credentials in the URL. None = file://.cgkit/state. PULUMI_BACKEND_URL, "
        "when set, wins (as for plain pulumi).")
    secrets_provider: SecretsProvider = Field(
        state.DEFAULT_SECRETS_PROVIDER, description="What encrypts a new stack's secrets: passphrase "
        "(PULUMI_CONFIG_PASSPHRASE[_FILE], else .cgkit/passphrase on a file backend), or awskms://, "
        "azurekeyvault://, gcpkms://, hashivault:// with the key. Existing stacks keep theirs.")


def _store_endpoint(endpoint: str) -> str:
    """Refuse a store endpoint a NetworkPolicy cannot name exactly (``cgkit.backups.store_destination``)."""
    backups.store_destination(endpoint)
    return endpoint


StoreEndpoint = Annotated[str, StringConstraints(max_length=300), _checked(_store_endpoint)]
Schedule = Annotated[str, StringConstraints(max_length=100), _checked(backups.check_schedule)]
BucketName = Annotated[str, StringConstraints(max_length=63), _checked(backups.check_bucket)]


def _region(region: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z0-9]+){1,3}", region, re.ASCII):
        raise ValueError(f"'{region}' is not a region name; a valid region is like eu-west-1 or us-east-1 "
                         "(what the store calls its region; us-east-1 for most S3-compatible stores)")
    return region


Region = Annotated[str, StringConstraints(max_length=40), _checked(_region)]
KeepDaily = Annotated[int, Field(ge=1, le=400, description="Keep the newest backup of each of this many newest days.")]
KeepWeekly = Annotated[int, Field(ge=0, le=520, description="Keep the newest backup of each of this many newest ISO weeks.")]


class BackupSettings(_Strict):
    """Scheduled logical backups of every in-tenant PostgreSQL (``cgkit.backups``): one CronJob per
    tenant dumps each app database and uploads it to ``s3://<bucket>/<env>/<code>/<id>/`` with the
    tenant's own credentials, which may touch only that prefix."""

    endpoint: StoreEndpoint = Field(description="The S3 store, http(s)://<host>:<port>: a cluster Service "
                                    "(<service>.<namespace>.svc; the port is its pods' own, as NetworkPolicies "
                                    "see the traffic after the Service) or an IP address; the backup pods may "
                                    "reach exactly this.")
    bucket: BucketName = Field(description="The bucket; each tenant writes under <env>/<code>/ only.")
    region: Region = Field("us-east-1", description="The bucket's region, e.g. eu-west-1.")
    schedule: Schedule = Field("30 2 * * *", description="Cron schedule (UTC), e.g. '30 2 * * *' or @daily.")
    keep_daily: KeepDaily = 7
    keep_weekly: KeepWeekly = 4


class BackupOverride(_Strict):
    """A municipality's own schedule or retention; the store stays the environment's."""

    schedule: Schedule | None = None
    keep_daily: KeepDaily | None = None
    keep_weekly: KeepWeekly | None = None


#: Binary multiples of the volume sizes: Mi, Gi, Ti -> bytes.
_STORAGE_UNITS = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
STORAGE_BOUNDS = ("1Gi", "16Ti")


def _storage_in_bounds(size: str) -> str:
    """Refuse a volume smaller than 1Gi or larger than 16Ti (a typo such as 10000Ti, or 0Gi)."""
    low, high = (_bytes(b) for b in STORAGE_BOUNDS)
    if not low <= _bytes(size) <= high:
        raise PydanticCustomError(CHECK_ERROR, "'{size}' is out of bounds; a volume is {low} to {high}",
                                  {"size": size, "low": STORAGE_BOUNDS[0], "high": STORAGE_BOUNDS[1]})
    return size


def _bytes(size: str) -> int:
    return int(size[:-2]) * _STORAGE_UNITS[size[-2:]]


Storage = Annotated[str, StringConstraints(pattern=r"^\d{1,9}(Mi|Gi|Ti)$"), AfterValidator(_storage_in_bounds)]


class DatabaseInCluster(_Strict):
    """PostgreSQL (PostGIS) runs inside the tenant namespace."""

    mode: Literal["in-cluster"]
    storage: Storage = Field("10Gi", description="Volume size, 1Gi to 16Ti, e.g. 10Gi.")


def _host_name_or_ip(host: str) -> str:
    """Accept a DNS name (RFC 1123, lower case) or an IPv4/IPv6 address; refuse anything else."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not is_valid_host(host):
        raise PydanticCustomError(CHECK_ERROR, "'{host}' is neither a DNS name nor an IP address; write a "
                                  "lower-case host name such as db.example.nl, or an address such as 10.0.0.5",
                                  {"host": host})
    return host


DbHost = Annotated[str, AfterValidator(_host_name_or_ip)]


class DatabaseExternal(_Strict):
    """PostgreSQL runs outside the cluster (a managed service); one database and role per app."""

    mode: Literal["external"]
    host: DbHost = Field(description="DNS name or IP address of the server.")
    port: int = Field(5432, ge=1, le=65535)
    sslmode: SslMode = Field("require", description="libpq sslmode, passed as PGSSLMODE.")


Database = Annotated[Union[DatabaseInCluster, DatabaseExternal], Field(discriminator="mode")]


class EnvironmentDefaults(_Strict):
    """What a municipality gets when its file says nothing."""

    size: Size = "S"
    apps: list[AppKey] = Field(description="App keys deployed when a municipality lists none.")
    database: Database = DatabaseInCluster(mode="in-cluster")


class Wave(_Strict):
    """One step of a fleet rollout: the municipalities in it, and when to stop."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    municipalities: list[CbsCode] | Literal["rest"] = Field(
        description="CBS codes, or 'rest' for every municipality not in an earlier wave."
    )
    max_failure_rate: float = Field(0.0, ge=0.0, le=1.0, description="Stop the rollout when a "
                                    "larger share of this wave's stacks fail (0.0 = any failure).")


class EnvironmentFile(_Strict):
    """``environments/<env>/environment.yaml``: what the platform team sets per environment."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="Must equal the folder name.")
    cluster: ClusterSettings = ClusterSettings()
    ingress: IngressSettings
    storage_class: DnsSubdomain = Field(description="StorageClass for app media (RWX) and database volumes.")
    storage_provisioner: QualifiedName = Field("kubernetes.io/no-provisioner",
                                     description="Provisioner of that StorageClass (platform stack).")
    images: ImageSettings
    resources: ResourceSettings = ResourceSettings()
    awaits: AwaitSettings = Field(AwaitSettings(), description="How long an up waits for Jobs and rollouts.")
    observability: ObservabilitySettings = ObservabilitySettings()
    state: StateSettings = Field(StateSettings(), description="Where the stacks' state lives and what "
                                 "encrypts their secrets (default: the project's file backend, a passphrase).")
    defaults: EnvironmentDefaults
    waves: list[Wave] = Field(default_factory=list, description="Fleet rollout order (cgkit fleet).")
    policy: PolicySettings = Field(PolicySettings(), description="How the policy rules are enforced here "
                                   "(default: mandatory, waivers of mandatory rules at most 180 days).")
    backups: BackupSettings | None = Field(None, description="Scheduled backups of the in-tenant databases "
                                           "(README 'Backups and restore'); None = no backups.")

    @model_validator(mode="after")
    def _sandbox_images_only_on_the_sandbox(self) -> EnvironmentFile:
        if self.images.sandbox_images and not self.cluster.sandbox:
            raise ValueError("images.sandbox_images: true needs cluster.sandbox: true (the sandbox's "
                             "images exist only on its own node); set it to false for this cluster")
        return self


# ---------------------------------------------------------------------------------------------
# The municipality file


class AppSettings(_Strict):
    """One app's settings in a municipality file. ``{}`` = on, with defaults."""

    enabled: bool = True
    replicas: int | None = Field(None, ge=1, le=20, description="Web replicas; None = by size.")


class Access(_Strict):
    """Groups (from the cluster's OIDC provider) bound to the tenant's roles."""

    admins: list[GroupName] = Field(default_factory=list, max_length=50,
                                    description="Bound to the tenant admin role (no system:* groups).")
    viewers: list[GroupName] = Field(default_factory=list, max_length=50,
                                     description="Bound to the read-only role (no system:* groups).")


def _issuer(issuer: str) -> str:
    """Refuse an issuer URL with credentials in it (`cgkit.urls`): it is copied into every app's setup document."""
    urls.refuse_credentials(issuer, "the issuer is copied into every app's setup document and the apps' "
                                    "Secrets; an issuer URL is public: write https://<host>[/<path>]")
    return issuer


IssuerUrl = Annotated[str, StringConstraints(max_length=500, pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$"),
                      _checked(_issuer)]


class Oidc(_Strict):
    """The municipality's OpenID Connect provider for the apps' admin login.

    The client secret the provider issued is not in this file: it is a secret, set once per stack
    (``pulumi config set --secret cgkit:oidc-client-secret ...``); cgkit refuses to deploy without it.
    """

    issuer: IssuerUrl = Field(description="Issuer URL (https); discovery is read from <issuer>/.well-known/openid-configuration.")
    client_id: str = Field(min_length=1, max_length=255, pattern=r"^\S+$",
                           description="Client id registered for this municipality's apps at the provider.")

    @property
    def discovery_endpoint(self) -> str:
        """``<issuer>/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4)."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class Auth(_Strict):
    """How people log in to the apps' admin; without ``oidc`` the apps keep their local accounts."""

    oidc: Oidc | None = None


class MunicipalityFile(_Strict):
    """``environments/<env>/municipalities/<code-lowercase>.yaml``: one municipality's choices."""

    code: CbsCode = Field(description="CBS municipality code, e.g. GM0344. Must match the file name.")
    domain: Domain = Field(description="Apps are served at <app>.<domain>.")
    name: str | None = Field(None, min_length=1, max_length=100, description="Display name; default: the CBS name.")
    size: Size | None = Field(None, description="S | M | L | XL: quota, limits and replicas.")
    apps: dict[AppKey, AppSettings] | None = Field(
        None, description="Overrides of the environment's default app set: add an app with {}, "
        "remove one with {enabled: false}."
    )
    database: Database | None = None
    access: Access = Access()
    auth: Auth = Auth()
    waivers: list[Waiver] = Field(default_factory=list, max_length=100)
    backups: BackupOverride | None = Field(None, description="This municipality's backup schedule or "
                                           "retention; needs the environment's backups section.")


# ---------------------------------------------------------------------------------------------
# The merged result


class MunicipalityConfig(_Strict):
    """The resolved config of one municipality stack: environment and municipality merged.

    Attributes:
        env: environment name (folder name), e.g. "sandbox".
        code, name, domain, size, database, access, auth, waivers: resolved from the municipality file,
            falling back to the environment defaults and the CBS list.
        backups: the environment's backup settings with the municipality's override on top; None
            when the environment has none or the database is external (its service backs it up).
        apps: every app that is on, with its settings (no disabled entries).
        environment: the environment file, for cluster, ingress, storage and image settings.
    """

    env: str
    code: CbsCode
    name: str
    domain: Domain
    size: Size
    apps: dict[AppKey, AppSettings]
    database: Database
    access: Access
    auth: Auth
    waivers: list[Waiver]
    backups: BackupSettings | None = None
    environment: EnvironmentFile

    @property
    def namespace(self) -> str:
        """The tenant namespace, derived from the code (``gm0344``)."""
        return tenant_namespace(self.code)

    @property
    def stack(self) -> str:
        """The Pulumi stack name, ``<env>.<code-lowercase>``."""
        return f"{self.env}.{self.code.lower()}"

    def host(self, app: str) -> str:
        """Return the public host name of ``app``: ``<app>.<domain>``."""
        return f"{app}.{self.domain}"


def is_valid_host(host: str) -> bool:
    """Tell whether ``host`` is a valid DNS name (RFC 1123, at most 253 characters)."""
    labels = host.split(".")
    return len(host) <= 253 and all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", part) for part in labels)
