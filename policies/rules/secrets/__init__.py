"""Secrets out of plain configuration: ConfigMaps and literal env values must not carry credentials."""

from __future__ import annotations

import re

from policies.model import Enforcement, rule
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
            yield f"data.{key}", f"ConfigMap key {key} looks like a credential ({why}); move it to a Secret"
    for key in obj.get("binaryData") or {}:
        if SECRET_NAME.search(key) and not REFERENCE_SUFFIX.search(key):
            yield f"binaryData.{key}", f"ConfigMap key {key} looks like a credential; move it to a Secret"


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


#: libpq sslmodes that allow a connection without TLS.
WEAK_SSLMODES = frozenset({"disable", "allow", "prefer"})


@rule("CGK-SEC-003", title="Database connections require TLS (PGSSLMODE require or stricter)", kinds=POD_KINDS,
      enforcement=Enforcement.ADVISORY, controls=("BIO2:8.24", "BIO2:8.21", "NSA:tls"),
      rationale="""With PGSSLMODE disable, allow or prefer, libpq sends credentials and case data to an
      external PostgreSQL server in clear text, or falls back to it when TLS fails. cgkit refuses such a
      municipality file outside the sandbox unless this rule is waived; here it is reported for review.""")
def database_tls(obj, ctx):
    for c in containers(obj):
        for i, env in enumerate(c.container.get("env") or ()):
            if env.get("name") == "PGSSLMODE" and env.get("value") in WEAK_SSLMODES:
                yield (c.at(f"env[{i}]", "value"),
                       f"container '{c.name}' connects with PGSSLMODE={env['value']}; use require or verify-full")
