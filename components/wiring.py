"""The suite's wiring, derived from the catalog: which app talks to which, and each app's
django-setup-configuration document.

Every ``depends_on`` between two *enabled* apps of a tenant is an :class:`Edge` (consumer ->
provider). Per edge:

* the consumer gets a zgw-consumers service for each API the provider serves (its in-cluster URL,
  ``http://<provider>.<namespace>.svc.cluster.local/<path>``) with the edge's credentials;
* the provider registers the consumer's credentials through its ``api.step``: a ``zgw`` provider a
  JWT secret (client id + secret), a ``token`` provider an API token;
* a ``zgw`` client also gets an Applicatie in the app that hosts the Autorisaties API (Open Zaak,
  which registers ApplicatieConfigurationStep): Open Zaak and Open Notificaties both check the
  client's autorisaties there;
* a consumer of the Notificaties API (``nrc``) that registers NotificationConfigurationStep is
  pointed at it, and the kanalen it publishes are created in Open Notificaties;
* a consumer of the Autorisaties API (``ac``) with Open Notificaties' AuthorizationStep is pointed
  at it.

With ``auth.oidc`` in the municipality file, every app that registers mozilla-django-oidc-db's
AdminOIDCConfigurationStep gets the municipality's provider (discovery endpoint) and client for its
admin login; the client secret is the stack's ``oidc-client-secret``.

An edge to a disabled app is simply absent, on both sides (degraded mode, DESIGN.md).

Secrets never appear in a document: a credential is ``{"value_from": {"env": NAME}}``
(django-setup-configuration >= 0.9 substitutes it from the environment) and :func:`setup_document`
says which edge secret each ``NAME`` carries, so the component puts the values into a Secret.

Step namespaces and enable settings come from the recorded step models in
components/setup_steps/ (library/<app>.json: extracted from the PyPI packages at the versions the
app pins; apps.json: read from the apps' sources), so a renamed namespace is a record change, not a
code change.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, Mapping, Sequence

from cgkit.secrets import OIDC_CLIENT_SECRET
from components.catalog import SERVICE_PORT, AppSpec

SITES = "django_setup_configuration.contrib.sites.steps.SitesConfigurationStep"
SERVICES = "zgw_consumers.contrib.setup_configuration.steps.ServiceConfigurationStep"
NOTIFICATIONS = "notifications_api_common.contrib.setup_configuration.steps.NotificationConfigurationStep"
APPLICATIES = "vng_api_common.contrib.setup_configuration.steps.ApplicatieConfigurationStep"
KANALEN = "nrc.setup_configuration.kanalen.KanaalConfigurationStep"
AUTHORIZATION = "nrc.setup_configuration.authorization.AuthorizationStep"
OIDC = "mozilla_django_oidc_db.setup_configuration.steps.AdminOIDCConfigurationStep"
#: The admin login's OIDC client in mozilla-django-oidc-db (its admin login looks this identifier up).
OIDC_ADMIN_IDENTIFIER = "admin-oidc"
#: Env name of the OIDC client secret (stack config ``cgkit.secrets.OIDC_CLIENT_SECRET``) in a setup Job.
OIDC_ENV = "CGKIT_OIDC_CLIENT_SECRET"

#: JWTSecret.identifier and Applicatie.client_ids items are CharField(max_length=50)
#: (commonground-api-common 2.16.0 vng_api_common/models.py, authorizations/models.py).
CLIENT_ID_MAX = 50
#: TokenAuth.token is CharField(max_length=40) in objecttypes-api 3.4.0, objects-api 3.6.0 and
#: open-klant 2.18.0 (<app>/token/models.py): a token is the edge secret's first 40 characters
#: (240 bits of the 256 generated).
TOKEN_LENGTH = 40
#: Contact on the tokens cgkit registers (TokenAuth.contact_person and email are required).
TOKEN_CONTACT = "cgkit platform team"
#: Namespace of the Applicatie UUIDs: uuid5 of the client id, so reruns update the same Applicatie.
_APPLICATIE_NS = uuid.UUID("5b1f0f5e-8d0a-4c36-9a55-6c9f0c1d2e7a")


@dataclass(frozen=True, order=True)
class Edge:
    """``consumer`` calls ``provider`` (both catalog keys)."""

    consumer: str
    provider: str

    def client_id(self, code: str) -> str:
        """The client id of this edge in tenant ``code``: ``cgkit-gm0344-openzaak-opennotificaties``.

        Distinct per tenant and edge, stable by construction, a slug (TokenAuth.identifier is a
        SlugField) and at most :data:`CLIENT_ID_MAX` characters.
        """
        cid = f"cgkit-{code.lower()}-{self.consumer}-{self.provider}"
        if len(cid) > CLIENT_ID_MAX:
            raise ValueError(f"client id {cid!r} is longer than {CLIENT_ID_MAX} characters")
        return cid

    @property
    def secret_name(self) -> str:
        """Stack config name of the edge's generated secret (``cgkit:<name>``)."""
        return f"{self.consumer}-to-{self.provider}-secret"


@dataclass(frozen=True)
class SecretRef:
    """What one ``value_from`` env variable of a setup document carries.

    ``secret``: the stack-config name of the secret (an edge's ``secret_name``, or
    ``oidc-client-secret``). ``form``: ``secret`` (the value as is), ``token`` (its first
    :data:`TOKEN_LENGTH` characters) or ``header`` (``"Token " + token``, the Authorization header
    a consumer sends).
    """

    secret: str
    form: Literal["secret", "token", "header"]

    def value(self, secret: str) -> str:
        """The env value for the secret's value ``secret``."""
        if self.form == "secret":
            return secret
        token = secret[:TOKEN_LENGTH]
        return token if self.form == "token" else f"Token {token}"


@dataclass(frozen=True)
class Tenant:
    """What the documents need to know about the tenant.

    ``oidc``: ``(discovery endpoint, client id)`` of the municipality's OpenID Connect provider for
    the apps' admin login, or ``None`` (local accounts only).
    """

    code: str
    name: str
    namespace: str
    domain: str
    oidc: tuple[str, str] | None = None


def edges(apps: Sequence[AppSpec]) -> list[Edge]:
    """Every dependency edge between two of ``apps`` (the enabled ones), sorted."""
    enabled = {a.key for a in apps}
    return sorted(Edge(a.key, dep) for a in apps for dep in a.depends_on if dep in enabled)


def dropped_edges(apps: Sequence[AppSpec], catalog: Mapping[str, AppSpec]) -> list[Edge]:
    """The edges of the enabled ``apps`` whose provider is not enabled (degraded mode), sorted."""
    enabled = {a.key for a in apps}
    return sorted(Edge(a.key, dep) for a in apps for dep in a.depends_on
                  if dep not in enabled and dep in catalog)


@functools.cache
def step_records(app: str) -> dict[str, dict[str, Any]]:
    """The recorded step models for ``app``: step class path -> ``{source, namespace, enable_setting, schema}``.

    From components/setup_steps/library/<app>.json (the PyPI packages at the versions the app's
    release pins, extracted by setup_steps/extract.py; an app pinning none has no file) and
    apps.json (the apps' own steps, read from their sources; each entry names repository, ref and
    paths).
    """
    folder = resources.files("components").joinpath("setup_steps")
    records: dict[str, dict[str, Any]] = {}
    for path in (folder.joinpath("library", f"{app}.json"), folder.joinpath("apps.json")):
        if path.is_file():
            records.update(json.loads(path.read_text(encoding="utf-8")))
    return records


def service_url(provider: str, namespace: str, path: str) -> str:
    """In-cluster URL of one API of ``provider`` (its Service, port 80)."""
    port = "" if SERVICE_PORT == 80 else f":{SERVICE_PORT}"
    return f"http://{provider}.{namespace}.svc.cluster.local{port}/{path}"


def _env_name(edge: Edge, form: str) -> str:
    return f"CGKIT_{edge.consumer}_{edge.provider}_{form}".upper()


def setup_document(app: AppSpec, apps: Sequence[AppSpec], tenant: Tenant
                   ) -> tuple[dict[str, Any], dict[str, SecretRef]]:
    """The setup-configuration document of ``app`` in a tenant whose enabled apps are ``apps``.

    Returns ``(document, secrets)``: the YAML document as data (``<enable_setting>: true`` and
    ``<namespace>: {...}`` per step it configures, keys sorted by step order in the app's
    ``setup_steps``) and ``{env name: SecretRef}`` for every ``value_from`` in it. An app with
    nothing to configure gets ``({}, {})``.

    Raises:
        ValueError: the app would need a step it does not register (a consumer without
            ServiceConfigurationStep) or one that has no record in components/setup_steps/.
    """
    by_key = {a.key: a for a in apps}
    links = edges(apps)
    steps: dict[str, Any] = {}
    secrets: dict[str, SecretRef] = {}

    def ref(edge: Edge, form: Literal["secret", "token", "header"]) -> dict[str, Any]:
        name = _env_name(edge, form)
        secrets[name] = SecretRef(edge.secret_name, form)
        return {"value_from": {"env": name}}

    if OIDC in app.setup_steps and tenant.oidc is not None:
        discovery, client_id = tenant.oidc
        secrets[OIDC_ENV] = SecretRef(OIDC_CLIENT_SECRET, "secret")
        steps[OIDC] = {
            "providers": [{"identifier": f"{tenant.code.lower()}-oidc",
                           "endpoint_config": {"oidc_op_discovery_endpoint": discovery}}],
            "items": [{"identifier": OIDC_ADMIN_IDENTIFIER, "enabled": True,
                       "oidc_provider_identifier": f"{tenant.code.lower()}-oidc",
                       "oidc_rp_client_id": client_id,
                       "oidc_rp_client_secret": {"value_from": {"env": OIDC_ENV}},
                       "oidc_rp_scopes_list": ["openid", "email", "profile"]}],
        }

    if SITES in app.setup_steps:
        steps[SITES] = {"items": [{"domain": f"{app.key}.{tenant.domain}", "name": f"{app.title} {tenant.name}"}]}

    services = []
    for edge in (e for e in links if e.consumer == app.key):
        provider = by_key[edge.provider]
        assert provider.api is not None  # parse_catalog refuses a dependency without an api
        for api_type, path in provider.api.services.items():
            service: dict[str, Any] = {
                "identifier": f"{provider.key}-{api_type}",
                "label": f"{provider.title} ({api_type})",
                "api_type": api_type,
                "api_root": service_url(provider.key, tenant.namespace, path),
            }
            if provider.api.auth == "zgw":
                service.update(auth_type="zgw", client_id=edge.client_id(tenant.code), secret=ref(edge, "secret"))
            else:
                service.update(auth_type="api_key", header_key="Authorization", header_value=ref(edge, "header"))
            services.append(service)
    if services:
        if SERVICES not in app.setup_steps:
            raise ValueError(f"{app.key} calls other apps but does not register {SERVICES}")
        steps[SERVICES] = {"services": services}

    clients = [e for e in links if e.provider == app.key]
    if clients and app.api is not None:
        if app.api.auth == "zgw":
            items = [{"identifier": e.client_id(tenant.code), "secret": ref(e, "secret")} for e in clients]
        else:
            items = [{"identifier": e.client_id(tenant.code), "token": ref(e, "token"),
                      "contact_person": TOKEN_CONTACT, "email": f"cgkit@{tenant.domain}",
                      "organization": tenant.name, "application": by_key[e.consumer].title} for e in clients]
        steps[app.api.step] = {"items": items}

    if APPLICATIES in app.setup_steps:
        zgw_clients = [e for e in links if by_key[e.provider].api and by_key[e.provider].api.auth == "zgw"]
        if zgw_clients:
            steps[APPLICATIES] = {"items": [{
                "uuid": str(uuid.uuid5(_APPLICATIE_NS, e.client_id(tenant.code))),
                "client_ids": [e.client_id(tenant.code)],
                "label": f"{by_key[e.consumer].title} -> {by_key[e.provider].title}",
                "heeft_alle_autorisaties": True,
            } for e in zgw_clients]}

    def provider_of(api_type: str) -> str | None:
        return next((e.provider for e in links if e.consumer == app.key
                     and api_type in (by_key[e.provider].api.services if by_key[e.provider].api else {})), None)

    if NOTIFICATIONS in app.setup_steps and (nrc := provider_of("nrc")):
        steps[NOTIFICATIONS] = {"notifications_api_service_identifier": f"{nrc}-nrc"}
    if AUTHORIZATION in app.setup_steps and (ac := provider_of("ac")):
        steps[AUTHORIZATION] = {"authorizations_api_service_identifier": f"{ac}-ac"}
    if KANALEN in app.setup_steps:
        kanalen = [{"naam": naam, "filters": list(filters)}
                   for e in clients for naam, filters in by_key[e.consumer].kanalen.items()]
        if kanalen:
            steps[KANALEN] = {"items": kanalen}

    records = step_records(app.key)
    document: dict[str, Any] = {}
    for step in sorted(steps, key=app.setup_steps.index):
        if step not in records:
            raise ValueError(f"{app.key}: step {step} has no record in components/setup_steps/")
        document[records[step]["enable_setting"]] = True
        document[records[step]["namespace"]] = steps[step]
    return document, secrets


def wiring_table(catalog: Mapping[str, AppSpec]) -> str:
    """The wiring of a tenant with every catalog app, as a Markdown table (README, components/README).

    One row per edge: consumer, provider, how the consumer authenticates, the APIs it gets, and
    what the provider registers (client credentials; kanalen when the provider is the
    Notificaties API).
    """
    rows = ["| consumer | provider | auth | services the consumer gets | provider side |",
            "| --- | --- | --- | --- | --- |"]
    for edge in edges(list(catalog.values())):
        consumer, provider = catalog[edge.consumer], catalog[edge.provider]
        assert provider.api is not None
        registered = "JWT secret (client id + secret)" if provider.api.auth == "zgw" else "API token"
        if provider.api.auth == "zgw" and any(APPLICATIES in a.setup_steps for a in catalog.values()):
            registered += "; Applicatie in the Autorisaties API"
        if "nrc" in provider.api.services and consumer.kanalen:
            registered += f"; kanalen {', '.join(consumer.kanalen)}"
        rows.append(f"| {consumer.title} | {provider.title} | {provider.api.auth} | "
                    f"{', '.join(f'`{t}` /{p}' for t, p in provider.api.services.items())} | {registered} |")
    return "\n".join(rows) + "\n"
