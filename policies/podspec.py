"""The one place that knows where a pod spec lives in each workload kind.

Every workload rule asks this module for the pod spec and its containers, together with the field
path that leads to them, so findings can name the exact field
(``spec.template.spec.containers[0].securityContext.runAsNonRoot``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

#: kind -> keys from the object root to its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

#: Every kind that carries a pod spec; the ``kinds`` of workload rules.
POD_KINDS = frozenset(POD_SPEC_PATHS)

#: The container lists of a pod spec, in the order findings report them.
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class PodSpec:
    """A located pod spec: the dict and the dotted path to it (``spec.template.spec``)."""

    spec: Mapping[str, Any]
    path: str

    def at(self, *fields: str) -> str:
        """The dotted path of a field below the pod spec: ``at("securityContext", "runAsUser")``."""
        return ".".join((self.path, *fields))


@dataclass(frozen=True)
class Container:
    """A container of a located pod spec, with its path (``spec.containers[1]``)."""

    container: Mapping[str, Any]
    path: str
    pod: PodSpec

    @property
    def name(self) -> str:
        """The container's name, or ``"?"``."""
        return str(self.container.get("name") or "?")

    @property
    def security_context(self) -> Mapping[str, Any]:
        """The container's ``securityContext`` or an empty mapping."""
        return self.container.get("securityContext") or {}

    def at(self, *fields: str) -> str:
        """The dotted path of a field below the container."""
        return ".".join((self.path, *fields))


def pod_spec(obj: Mapping[str, Any]) -> PodSpec | None:
    """Locate the pod spec of a workload object; None for other kinds or when the spec is absent."""
    keys = POD_SPEC_PATHS.get(str(obj.get("kind")))
    node: Any = obj
    for key in keys or ():
        node = node.get(key) if isinstance(node, Mapping) else None
    if not keys or not isinstance(node, Mapping):
        return None
    return PodSpec(node, ".".join(keys))


def containers(obj: Mapping[str, Any]) -> Iterator[Container]:
    """Yield every container (init, regular, ephemeral) of a workload object; nothing for other kinds."""
    pod = pod_spec(obj)
    if pod is None:
        return
    for list_name in CONTAINER_LISTS:
        for i, c in enumerate(pod.spec.get(list_name) or ()):
            yield Container(c, f"{pod.path}.{list_name}[{i}]", pod)


def pod_metadata(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], str] | None:
    """The metadata the pods of a workload get, and its path: a Pod's own ``metadata``, a controller's
    ``spec.template.metadata`` (CronJob: ``spec.jobTemplate.spec.template.metadata``); None for other kinds."""
    keys = POD_SPEC_PATHS.get(str(obj.get("kind")))
    if not keys:
        return None
    node: Any = obj
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, Mapping) else None
    path = ".".join((*keys[:-1], "metadata"))
    return ((node or {}).get("metadata") or {}), path


def effective(container: Container, field: str) -> Any:
    """A securityContext field as the kubelet sees it: the container's value, else the pod's.

    Only meaningful for fields that exist at both levels (runAsNonRoot, runAsUser, runAsGroup,
    seccompProfile, seLinuxOptions, appArmorProfile, windowsOptions).
    """
    own = container.security_context.get(field)
    if own is not None:
        return own
    return (container.pod.spec.get("securityContext") or {}).get(field)
