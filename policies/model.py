"""The vocabulary every rule shares: rules, findings, the evaluation context, and the `rule` decorators.

A rule is metadata plus one pure function. Resource rules judge one Kubernetes object (a plain dict,
the manifest as the API sees it, camelCase keys) and yield ``(path, message)`` pairs; stack rules
judge all objects of a stack at once and yield ``(object, path, message)`` triples. Nothing here does
I/O, so the same rules run in pytest, in the CLI and inside the CrossGuard pack.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from cgkit import conventions

#: Namespaces that cgkit gives a municipality: ``conventions.tenant_namespace("GM0344") == "gm0344"``.
TENANT_NAMESPACE = re.compile(r"gm\d{4}")

RULE_ID = re.compile(r"CGK-[A-Z]+-\d{3}")
#: A map key that can stand in a field path after a dot; others are written ``['key']``.
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Enforcement(str, enum.Enum):
    """What a violation does: ``mandatory`` blocks (exit 1, CrossGuard MANDATORY), ``advisory`` warns."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"

    def within(self, environment: "Enforcement") -> "Enforcement":
        """This rule level under an environment's level: mandatory only where both are (an
        ``advisory`` environment reports every finding without blocking; advisory rules stay advisory)."""
        both = self is Enforcement.MANDATORY and environment is Enforcement.MANDATORY
        return Enforcement.MANDATORY if both else Enforcement.ADVISORY


class Scope(str, enum.Enum):
    """``object`` rules see one manifest; ``stack`` rules see every manifest of a stack together."""

    OBJECT = "object"
    STACK = "stack"


@dataclass(frozen=True)
class Context:
    """What a rule may know beyond the object itself. Every field is optional. (Stack rules get the
    stack's objects as their first argument, not through the context.)

    When a field is absent, rules that need it skip that part of the judgement rather than guess
    (an unknown domain means no host check, unknown registries mean no registry check).

    Attributes:
        gemeente_code: the municipality's CBS code, upper case (``"GM0344"``).
        domain: the municipality's DNS domain; Ingress hosts must equal it or end in ``.<domain>``.
        allowed_registries: where images may come from: ``host`` or ``host/path`` (``"docker.io"``).
        tenant_namespace: the municipality's namespace; defaults to the one derived from the code.
    """

    gemeente_code: str | None = None
    domain: str | None = None
    allowed_registries: tuple[str, ...] | None = None
    tenant_namespace: str | None = None

    def __post_init__(self) -> None:
        if self.tenant_namespace is None and self.gemeente_code:
            object.__setattr__(self, "tenant_namespace", conventions.tenant_namespace(self.gemeente_code))

    def namespace_of(self, obj: Mapping[str, Any]) -> str | None:
        """The namespace ``obj`` lands in: its own, else the tenant's (cgkit applies into it), else None."""
        return meta(obj).get("namespace") or self.tenant_namespace

    def is_tenant_namespace(self, namespace: str | None) -> bool:
        """True when ``namespace`` belongs to a municipality.

        That is the context's tenant namespace, any name shaped like one (``gm`` + four digits, as
        `conventions.tenant_namespace` makes them), and a missing namespace: a manifest without one
        is applied into whatever namespace the caller picks, and for cgkit that is a tenant.
        """
        return namespace is None or namespace == self.tenant_namespace or bool(TENANT_NAMESPACE.fullmatch(namespace))

    def code_for(self, namespace: str | None) -> str | None:
        """The CBS code a tenant namespace belongs to: the context's code for its own namespace,
        else the code the name spells (``gm0518`` -> ``GM0518``), else the context's code."""
        if namespace and namespace != self.tenant_namespace and TENANT_NAMESPACE.fullmatch(namespace):
            return namespace.upper()
        return self.gemeente_code or (namespace.upper() if namespace else None)

    def in_tenant(self, obj: Mapping[str, Any]) -> bool:
        """True when a namespaced object lands in a tenant namespace (see `is_tenant_namespace`)."""
        return self.is_tenant_namespace(self.namespace_of(obj))


#: A resource rule's judgement: ``check(obj, ctx)`` yields ``(path, message)``.
ObjectCheck = Callable[[Mapping[str, Any], Context], Iterable[tuple[str, str]]]
#: A stack rule's judgement: ``check(objects, ctx)`` yields ``(subject, path, message)``; the subject is
#: the object the finding is about (a dict with at least kind and metadata.name).
StackCheck = Callable[[Sequence[Mapping[str, Any]], Context], Iterable[tuple[Mapping[str, Any], str, str]]]


@dataclass(frozen=True)
class Rule:
    """One policy rule: metadata as data, plus the judgement.

    Attributes:
        id: stable identifier (``CGK-POD-001``); never derived from the title, never reused.
        title: the desired state, e.g. "Containers are not privileged".
        rationale: why it matters, in one paragraph for the auditor.
        enforcement: mandatory or advisory.
        kinds: the Kubernetes kinds the rule looks at (empty = every kind).
        controls: ids from ``policies/controls.yaml`` this rule serves.
        check: the judgement (`ObjectCheck` or `StackCheck`, by ``scope``).
        scope: object or stack.
        family: the module the rule lives in (``pod_security``); set by the catalog.
    """

    id: str
    title: str
    rationale: str
    enforcement: Enforcement
    kinds: frozenset[str]
    controls: tuple[str, ...]
    check: Callable[..., Iterable[tuple]]
    scope: Scope = Scope.OBJECT
    family: str = ""

    def applies_to(self, obj: Mapping[str, Any]) -> bool:
        """True when this object rule looks at ``obj``'s kind."""
        return not self.kinds or obj.get("kind") in self.kinds


def _decorator(scope: Scope, rule_id: str, *, title: str, rationale: str, controls: Sequence[str],
               kinds: Iterable[str] = (), enforcement: Enforcement = Enforcement.MANDATORY
               ) -> Callable[[Callable[..., Iterable[tuple]]], Rule]:
    if not RULE_ID.fullmatch(rule_id):
        raise ValueError(f"rule id {rule_id!r} does not match {RULE_ID.pattern}")

    def wrap(check: Callable[..., Iterable[tuple]]) -> Rule:
        return Rule(id=rule_id, title=title, rationale=" ".join(rationale.split()), enforcement=enforcement,
                    kinds=frozenset(kinds), controls=tuple(controls), check=check, scope=scope)
    return wrap


def rule(rule_id: str, **metadata: Any) -> Callable[[ObjectCheck], Rule]:
    """Turn ``check(obj, ctx)`` into an object-scoped `Rule`; keyword arguments are `Rule` fields.

    Raises ValueError when the id is not shaped like ``CGK-<FAMILY>-<nnn>``.
    """
    return _decorator(Scope.OBJECT, rule_id, **metadata)


def stack_rule(rule_id: str, **metadata: Any) -> Callable[[StackCheck], Rule]:
    """Turn ``check(objects, ctx)`` into a stack-scoped `Rule`; see `rule`."""
    return _decorator(Scope.STACK, rule_id, **metadata)


@dataclass(frozen=True)
class Subject:
    """The object a finding is about, as ``Kind/namespace/name``; ``source`` is a file when known."""

    kind: str
    namespace: str | None
    name: str
    source: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any], source: str | None = None) -> "Subject":
        """Build the subject of a manifest dict (missing fields become ``"?"``)."""
        m = meta(obj)
        return cls(str(obj.get("kind") or "?"), m.get("namespace"), str(m.get("name") or "?"), source)

    def __str__(self) -> str:
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)


class Status(str, enum.Enum):
    """A finding is a violation, or waived by an approved, unexpired waiver."""

    VIOLATION = "violation"
    WAIVED = "waived"


@dataclass(frozen=True)
class Finding:
    """One thing a rule found wrong: which rule, which object, which field, what to do."""

    rule_id: str
    enforcement: Enforcement
    subject: Subject
    path: str
    message: str
    status: Status = Status.VIOLATION
    waiver_reason: str | None = None

    @property
    def blocking(self) -> bool:
        """True for an unwaived mandatory violation: the thing that makes a check exit 1."""
        return self.status is Status.VIOLATION and self.enforcement is Enforcement.MANDATORY

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the CLI's json output and the report)."""
        return {"rule": self.rule_id, "enforcement": self.enforcement.value, "status": self.status.value,
                "kind": self.subject.kind, "namespace": self.subject.namespace, "name": self.subject.name,
                "file": self.subject.source, "path": self.path, "message": self.message,
                "waiver_reason": self.waiver_reason}


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``obj.metadata`` or an empty mapping."""
    return obj.get("metadata") or {}


def labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """``obj.metadata.labels`` or an empty mapping."""
    return meta(obj).get("labels") or {}


def key_path(parent: str, key: object) -> str:
    """The path of ``key`` in the map at ``parent``: ``data.DB_PASSWORD``, but
    ``metadata.annotations['cgkit.io/client-secret']`` and ``data['setup.yaml']`` for keys a dot would split."""
    key = str(key)
    return f"{parent}.{key}" if PLAIN_KEY.fullmatch(key) else f"{parent}['{key}']"
