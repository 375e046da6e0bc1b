"""Secrets out of plain configuration: ConfigMaps and literal env values must not carry credentials."""

from __future__ import annotations

import re

import yaml

from policies.model import Enforcement, key_path, rule
from policies.podspec import POD_KINDS, containers

#: Key names that say "this is a credential": DB_PASSWORD, SECRET_KEY, API_TOKEN, AWS_ACCESS_KEY_ID, ...
SECRET_NAME = re.compile(r"PASSW(OR)?D|(^|_)PWD($|_)|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL",
                         re.IGNORECASE)
#: Names that only point at a credential (a file path, a Secret's name) rather than hold it.
REFERENCE_SUFFIX = re.compile(r"_(FILE|PATH|DIR|NAME|REF)$", re.IGNORECASE)
#: A URL with a password in it: scheme://user:password@host
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


def looks_secret(name: str, value: object) -> str | None:
    """Why a (name, value) pair looks like a credential, or None. Empty values never do."""
    if not isinstance(value, str) or not value.strip():
        return None
    if SECRET_NAME.search(name) and not REFERENCE_SUFFIX.search(name):
        return "its name says it is a credential"
    if URL_WITH_PASSWORD.search(value):
        return "its value is a URL with a password in it"
    return None


@rule("CGK-SEC-001", title="ConfigMaps hold no credentials", kinds={"ConfigMap"},
      controls=("BIO2:8.12", "BIO2:5.17", "NSA:secrets"),
      rationale="""ConfigMaps are readable by everyone with view rights, appear in plain text in `kubectl
      describe`, logs and Pulumi state, and are not encrypted at rest; credentials belong in Secrets.""")
def configmap_credentials(obj, ctx):
    for key, value in (obj.get("data") or {}).items():
        why = looks_secret(key, value)
        if why:
            yield key_path("data", key), f"ConfigMap key {key} looks like a credential ({why}); move it to a Secret"
    for key in obj.get("binaryData") or {}:
        if SECRET_NAME.search(key) and not REFERENCE_SUFFIX.search(key):
            yield key_path("binaryData", key), f"ConfigMap key {key} looks like a credential; move it to a Secret"


@rule("CGK-SEC-002", title="Containers take credentials from Secrets, not from literal env values", kinds=POD_KINDS,
      controls=("BIO2:8.12", "BIO2:5.17", "NSA:secrets"),
      rationale="""A literal env value is stored in the workload spec, so anyone who can read the
      Deployment (and the Pulumi state) reads the password. Use valueFrom.secretKeyRef.""")
def env_credentials(obj, ctx):
    for c in containers(obj):
        for i, env in enumerate(c.container.get("env") or ()):
            why = looks_secret(str(env.get("name", "")), env.get("value"))
            if why:
                yield (c.at(f"env[{i}]", "value"),
                       f"container '{c.name}' sets {env.get('name')} literally ({why}); use valueFrom.secretKeyRef")


#: Django's own secret settings and the client secrets of the suite's wiring: SECRET_KEY (and
#: SECRET_KEY_FALLBACKS), OIDC_RP_CLIENT_SECRET, CGKIT_<consumer>_<provider>_SECRET, and in a
#: django-setup-configuration document the `secret` / `client_secret` fields (zgw-consumers
#: services, vng_api_common credentials, mozilla-django-oidc-db providers).
DJANGO_SECRET = re.compile(r"(^|[_-])secret([_-]key([_-]fallbacks?)?)?$", re.IGNORECASE)


def _django_secret_name(name: str) -> bool:
    """True for a key that names a Django secret (the last segment of ``a.b/c``), not a reference."""
    last = re.split(r"[./]", name)[-1]
    return bool(DJANGO_SECRET.search(last)) and not REFERENCE_SUFFIX.search(last)


def _embedded_literals(text: str, path: str):
    """``(path, key)`` of every Django-secret field with a literal value inside a YAML/JSON document.

    A setup-configuration document may reference a secret (``secret: {value_from: {env: NAME}}``),
    which is fine anywhere; a literal string is the secret itself.
    """
    if "\n" not in text and not text.lstrip().startswith(("{", "[")):
        return
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return

    def walk(node, at):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and value.strip() and _django_secret_name(str(key)):
                    yield key_path(at, key), str(key)
                else:
                    yield from walk(value, key_path(at, key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                yield from walk(item, f"{at}[{i}]")

    yield from walk(doc, path)


@rule("CGK-SEC-003", title="Django secrets and client secrets are only in Secrets",
      controls=("BIO2:8.12", "BIO2:5.17", "BIO2:8.24", "NSA:secrets"),
      rationale="""A Django SECRET_KEY signs sessions, password-reset links and CSRF tokens; a client
      secret lets its holder call another app of the suite as that client. Outside a Secret they are
      readable with view rights and end up in logs, Pulumi state and `kubectl describe`: in a
      ConfigMap (also inside a setup-configuration document there, a finding of the PodiumD security
      review), as a literal env value, or in an annotation or label. Documents keep
      `value_from: {env: NAME}` references and the values live in a Secret.""")
def django_secrets_outside_secrets(obj, ctx):
    if obj.get("kind") == "Secret":
        return
    metadata = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        for key, value in (metadata.get(field) or {}).items():
            at = key_path(f"metadata.{field}", key)
            if _django_secret_name(key) and str(value).strip():
                yield at, f"{field[:-1]} {key} carries a Django/client secret; move it to a Secret"
            elif isinstance(value, str):
                for path, name in _embedded_literals(value, at):
                    yield path, f"{field[:-1]} {key} embeds {name} with a literal value; move it to a Secret"
    if obj.get("kind") == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if not isinstance(value, str):
                continue
            if _django_secret_name(key) and value.strip():
                yield key_path("data", key), f"ConfigMap key {key} is a Django/client secret; move it to a Secret"
            for path, name in _embedded_literals(value, key_path("data", key)):
                yield path, (f"ConfigMap key {key} embeds {name} with a literal value; keep the document in a "
                             "Secret or reference the value (value_from: {env: NAME})")
    if obj.get("kind") in POD_KINDS:
        for c in containers(obj):
            for i, env in enumerate(c.container.get("env") or ()):
                name = str(env.get("name", ""))
                if _django_secret_name(name) and str(env.get("value") or "").strip():
                    yield (c.at(f"env[{i}]", "value"),
                           f"container '{c.name}' sets {name} literally; use valueFrom.secretKeyRef")


#: libpq sslmodes that allow a connection without TLS.
WEAK_SSLMODES = frozenset({"disable", "allow", "prefer"})


@rule("CGK-SEC-004", title="Database connections require TLS (PGSSLMODE require or stricter)", kinds=POD_KINDS,
      enforcement=Enforcement.ADVISORY, controls=("BIO2:8.24", "BIO2:8.21.04", "NSA:tls"),
      rationale="""With PGSSLMODE disable, allow or prefer, libpq sends credentials and case data to an
      external PostgreSQL server in clear text, or falls back to it when TLS fails. cgkit refuses such a
      municipality file outside the sandbox unless this rule is waived; here it is reported for review.""")
def database_tls(obj, ctx):
    for c in containers(obj):
        for i, env in enumerate(c.container.get("env") or ()):
            if env.get("name") == "PGSSLMODE" and env.get("value") in WEAK_SSLMODES:
                yield (c.at(f"env[{i}]", "value"),
                       f"container '{c.name}' connects with PGSSLMODE={env['value']}; use require or verify-full")
