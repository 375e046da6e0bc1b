"""Where a manifest's structure departs from the Kubernetes API types: the field and what it should be.

Rules read manifests as plain dicts and trust their shape (``spec.containers`` is a list of mappings).
A hostile or broken manifest (a string where a list belongs, null items, numbers as names) makes a
rule fail; `policies.evaluate` then reports a finding instead of an exception, and asks this module
to name the field. The types are the Kubernetes API's own, as the official Python client publishes
them (``kubernetes.client.models``: each model's ``openapi_types`` and ``attribute_map``); the client
is imported only when a manifest needs explaining.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterator, Mapping

from cgkit import conventions

#: ``list[V1Container]`` and ``dict[str, str]`` (older clients: ``dict(str, str)``) in the type strings.
_LIST = re.compile(r"list\[(.+)\]")
_DICT = re.compile(r"dict[\[(]str, (.+)[\])]")
#: What every object has, whatever its kind (custom resources included).
_ENVELOPE = {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta"}
_SCALARS = {"str": (str, int, float), "int": (int,), "float": (int, float), "bool": (bool,),
            "datetime": (str,), "date": (str,)}
_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
          "datetime": "a timestamp", "date": "a date"}


def problems(obj: Mapping[str, Any], most: int = 5) -> list[tuple[str, str]]:
    """Return up to ``most`` ``(field path, message)`` pairs where ``obj`` does not match the type of
    its ``apiVersion``/``kind`` in the Kubernetes API (unknown kinds: only the object envelope, i.e.
    apiVersion, kind and metadata, is checked). Empty when the shape is right.

    Paths look like the rules' own: ``spec.template.spec.containers[0].ports``.
    """
    found: list[tuple[str, str]] = []
    model = _model_name(obj.get("apiVersion"), obj.get("kind"))
    walk = _walk(obj, model, "") if model else _fields(obj, _ENVELOPE, "")
    for path, message in walk:
        found.append((path or "(the object)", message))
        if len(found) >= most:
            break
    return found


def identity(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` where a manifest does not say what it is as the API server needs: no
    ``apiVersion``, a ``kind`` that is no kind name (``pod``, ``"Pod "``: no rule for Pods would judge
    it), no ``metadata.name`` (or ``generateName``), a ``metadata.namespace`` that is text but no
    namespace name. The API server refuses each, and a report could only call them ``?`` or put them
    in a namespace that cannot exist. ``""`` is no namespace (kubectl's own). Only for manifest files:
    objects in the engine get their names later (Pulumi's auto-naming), so `problems` leaves this alone."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    found = []
    if not obj.get("apiVersion"):
        found.append(("apiVersion", "required, e.g. v1 or apps/v1"))
    kind = obj.get("kind")
    if isinstance(kind, str) and not re.fullmatch(r"[A-Z][A-Za-z0-9]*", kind):
        found.append(("kind", f"{kind[:80]!r} is not a kind: CamelCase letters and digits, e.g. Deployment"))
    if not meta.get("name") and not meta.get("generateName"):
        found.append(("metadata.name", "required: the API server refuses an object without a name (or generateName)"))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and namespace and not re.fullmatch(conventions.DNS_LABEL_PATTERN, namespace):
        found.append(("metadata.namespace", f"{namespace[:80]!r} is not a namespace name: {conventions.DNS_LABEL_HINT}"))
    return found


@functools.lru_cache(maxsize=None)
def _models() -> Any:
    import kubernetes.client.models as models  # about a second to import: only for broken manifests

    return models


def _model_name(api_version: Any, kind: Any) -> str | None:
    """``V1Deployment`` for apps/v1 Deployment, ``V2HorizontalPodAutoscaler`` for autoscaling/v2; None
    when the client has no such model (a custom resource)."""
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind.isidentifier():
        return None
    name = api_version.rsplit("/", 1)[-1].capitalize() + kind
    return name if hasattr(_models(), name) else None


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _walk(value: Any, type_name: str, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(path, message)`` for every place below ``path`` where ``value`` is not ``type_name``."""
    if value is None or type_name == "object":
        return  # null means "unset" to the API server; object is any JSON value
    if type_name in _SCALARS:
        if not isinstance(value, _SCALARS[type_name]) or (isinstance(value, bool) and type_name != "bool"):
            yield path, f"expected {_WORDS[type_name]}, got {describe(value)}"
        return
    if m := _LIST.fullmatch(type_name):
        if not isinstance(value, list):
            yield path, f"expected a list, got {describe(value)}"
            return
        for i, item in enumerate(value):
            if item is None and not m[1] in _SCALARS:
                yield f"{path}[{i}]", "a list item is null; remove it or fill it in"
            else:
                yield from _walk(item, m[1], f"{path}[{i}]")
        return
    if m := _DICT.fullmatch(type_name):
        if not isinstance(value, dict):
            yield path, f"expected a mapping, got {describe(value)}"
            return
        for key, item in value.items():
            yield from _walk(item, m[1], f"{path}.{key}" if path else str(key))
        return
    model = getattr(_models(), type_name, None)
    if model is None:
        return
    if not isinstance(value, dict):
        yield path, f"expected a mapping ({type_name.removeprefix('V1')}), got {describe(value)}"
        return
    yield from _fields(value, {key: model.openapi_types[attr] for attr, key in model.attribute_map.items()}, path)


def _fields(value: Mapping[str, Any], types: Mapping[str, str], path: str) -> Iterator[tuple[str, str]]:
    """Walk the known fields of a mapping (unknown ones are the API server's to refuse)."""
    for key, item in value.items():
        if key in types:
            yield from _walk(item, types[key], f"{path}.{key}" if path else key)
