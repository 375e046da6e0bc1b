"""Check a django-setup-configuration document against the recorded step models.

The records (components/setup_steps/*.json) hold each step's JSON Schema as pydantic wrote it
(library steps) or as read from the app's source (app steps). This checker covers the schema
keywords those records use: ``$ref`` into ``$defs``, ``type``, ``properties``, ``required``,
``additionalProperties: false`` (django-setup-configuration's ConfigurationModel forbids extra
keys), ``items``, ``enum``, ``anyOf``, ``minLength``/``maxLength``, ``pattern`` and
``format: email``, ``oneOf`` (as anyOf: the records' alternatives exclude each other), ``const``. ``value_from: {env: NAME}`` is substituted first, as
django_setup_configuration.model_utils.YamlWithEnvSubstitution does (0.12.0), so the values the
Job would see are what is checked.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from components.wiring import step_records

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "null": type(None)}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def substitute(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every ``{"value_from": {"env": NAME}}`` replaced by ``env[NAME]`` (KeyError if unset)."""
    if isinstance(node, dict):
        if set(node) == {"value_from"}:
            return env[node["value_from"]["env"]]
        return {k: substitute(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, env) for v in node]
    return node


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema`` (``root`` resolves ``$ref``), as ``path: problem``."""
    if "$ref" in schema:
        return errors(value, root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], root, path)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [errors(value, option, root, path) for option in schema[combinator]]
            if all(options):
                return [f"{path}: matches none of {combinator} ({options})"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: must be {schema['const']!r}"]
    found: list[str] = []
    kind = schema.get("type")
    if kind:
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (kind == "integer" and isinstance(value, bool)):
            return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{path}: longer than {schema['maxLength']} characters")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']} characters")
        # pydantic writes Rust-regex end anchors (\z); Python before 3.14 spells it \Z
        if "pattern" in schema and not re.search(schema["pattern"].replace("\\z", "\\Z"), value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "email" and not _EMAIL.match(value):
            found.append(f"{path}: {value!r} is not an e-mail address")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            found += [f"{path}.{k}: not a field of the step model" for k in value if k not in props]
        for key, item in value.items():
            if key in props:
                found += errors(item, props[key], root, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], root, f"{path}[{i}]")
    return found


def document_errors(document: Mapping[str, Any], app: str, steps: tuple[str, ...], env: Mapping[str, str]
                    ) -> list[str]:
    """Problems of a whole setup document for ``app``, which registers ``steps``.

    Every top-level key must be the namespace or enable setting of one of ``steps`` that has a
    record (at the package versions ``app`` pins); every configured step must be enabled; every
    namespace validates against its schema.
    """
    records = {r["namespace"]: (path, r) for path, r in step_records(app).items() if path in steps}
    enables = {r["enable_setting"]: ns for ns, (_, r) in records.items()}
    found = [f"{key}: no step of this app has this namespace or enable setting"
             for key in document if key not in records and key not in enables]
    for namespace, (path, record) in records.items():
        if namespace not in document:
            continue
        if document.get(record["enable_setting"]) is not True:
            found.append(f"{record['enable_setting']}: {path} is configured but not enabled")
        found += errors(substitute(document[namespace], env), record["schema"], record["schema"], namespace)
    return found
