"""Secure defaults shared by every cgkit component: labels, security contexts, resources, awaits, options.

One place for the restricted Pod Security Standard settings, so the components cannot drift apart:
every pod runs as a fixed non-root UID/GID with ``seccompProfile: RuntimeDefault``, and every
container drops ALL capabilities and cannot escalate privileges.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from cgkit import conventions as cv
from components._quantity import scale_cpu, scale_memory
from components.catalog import Resources


@dataclass(frozen=True)
class Awaits:
    """How long the engine awaits a Job and a workload's rollout (seconds), as the Kubernetes
    provider reads it from each object's ``pulumi.com/timeoutSeconds`` annotation; the environment
    file's ``awaits:`` sets them (cgkit.config.model.AwaitSettings). The provider's own default is
    10 minutes for both."""

    job_s: int = 1800
    rollout_s: int = 600

    def job(self) -> dict[str, str]:
        """The annotations of a Job: its await bound."""
        return {"pulumi.com/timeoutSeconds": str(self.job_s)}

    def rollout(self) -> dict[str, str]:
        """The annotations of a Deployment or StatefulSet: its await bound."""
        return {"pulumi.com/timeoutSeconds": str(self.rollout_s)}


def labels(code: str, name: str, component: str) -> dict[str, str]:
    """The full label set of an object: recommended labels plus the municipality code."""
    return {
        cv.LABEL_NAME: name,
        cv.LABEL_COMPONENT: component,
        cv.LABEL_PART_OF: cv.PART_OF,
        cv.LABEL_MANAGED_BY: cv.MANAGED_BY,
        cv.LABEL_GEMEENTE: code.upper(),
    }


def selector(name: str, component: str | None = None) -> dict[str, str]:
    """The stable subset of :func:`labels` used in selectors (Deployment, Service, NetworkPolicy)."""
    sel = {cv.LABEL_NAME: name}
    if component is not None:
        sel[cv.LABEL_COMPONENT] = component
    return sel


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod-level restricted settings; ``fsGroup`` makes mounted volumes writable for ``uid``.

    ``fsGroupChangePolicy: OnRootMismatch``: the kubelet changes a volume's ownership only while its
    root is not yet ``uid``'s. With the default (``Always``) every new pod on an existing volume gets
    a recursive ``chmod g+rwX``, and PostgreSQL then refuses its data directory ("has invalid
    permissions", it must be 0700 or 0750): found on the real node, when a replaced StatefulSet's
    pod mounted the claim its predecessor had initialised (Kubernetes docs, "Configure volume
    permission and ownership change policy for Pods").
    """
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "fs_group": uid,
        "fs_group_change_policy": "OnRootMismatch",
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def container_security_context(*, read_only_root: bool) -> dict[str, Any]:
    """Container-level restricted settings (PSS restricted: no escalation, drop ALL, seccomp)."""
    return {
        "allow_privilege_escalation": False,
        "privileged": False,
        "run_as_non_root": True,
        "read_only_root_filesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_spec(service_account: str, uid: int, containers: list[dict[str, Any]], *, read_only_root: bool,
             init_containers: Sequence[dict[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """The one pod scaffold every cgkit workload uses (Deployments, StatefulSets, Jobs).

    Returns a pod ``spec`` (snake_case, as pulumi_kubernetes takes it) running as ``service_account``
    without an automounted token, without service links (they inject ``<SERVICE>_PORT=tcp://...``
    variables that break uWSGI: open-zaak/open-zaak#2415, research/commonground.md §2.2), with the
    restricted pod security context for ``uid`` and the restricted container security context set on
    every container of ``containers`` and ``init_containers`` (a container's own ``security_context``
    key is overwritten). ``extra`` adds pod fields (``volumes``, ``restart_policy``, ...).
    """
    def restricted(c: dict[str, Any]) -> dict[str, Any]:
        return {**c, "security_context": container_security_context(read_only_root=read_only_root)}

    return {
        "service_account_name": service_account,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "security_context": pod_security_context(uid),
        "containers": [restricted(c) for c in containers],
        **({"init_containers": [restricted(c) for c in init_containers]} if init_containers else {}),
        **extra,
    }


def service_account(resource_name: str, metadata: Mapping[str, Any], parent: pulumi.Resource
                    ) -> k8s.core.v1.ServiceAccount:
    """The ServiceAccount a component's pods run as: no automounted API token (the apps never call
    the Kubernetes API). ``metadata`` names it; it is a child of ``parent``."""
    return k8s.core.v1.ServiceAccount(resource_name, metadata=dict(metadata),
                                      automount_service_account_token=False, opts=child(parent))


def resources(res: Resources, multiplier: float = 1.0, requests_scale: float = 1.0) -> dict[str, dict[str, str]]:
    """A container ``resources`` block from a catalog figure, scaled by a tier multiplier; the
    requests also by the environment's ``requests_scale`` (limits never)."""
    return {
        "requests": {"cpu": scale_cpu(res.requests.cpu, multiplier * requests_scale),
                     "memory": scale_memory(res.requests.memory, multiplier * requests_scale)},
        "limits": {"cpu": scale_cpu(res.limits.cpu, multiplier),
                   "memory": scale_memory(res.limits.memory, multiplier)},
    }


def checksum(data: Mapping[str, Any]) -> str:
    """A short stable hash of plain data; put on pod templates so a config change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def secret_digest(values: Sequence[str]) -> str:
    """A short digest of secret values (never the values): put on a pod template (or in a Job's name)
    so that rotating a secret the pods read rolls them. The values are 256-bit random
    (``cgkit.engine.new_secret``), so 64 bits of their SHA-256 reveal nothing usable."""
    return hashlib.sha256("\0".join(values).encode()).hexdigest()[:16]


def secret_digest_of(values: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    """``secret_digest`` of secret Outputs, as a plain (not secret) Output: the digest is safe to show."""
    return pulumi.Output.unsecret(pulumi.Output.all(*values).apply(secret_digest))


def require_provider(component: str, name: str, opts: pulumi.ResourceOptions | None) -> None:
    """Refuse to build a component without an explicit Kubernetes provider.

    A multi-tenant kit must never fall back to the ambient kubeconfig: a tenant deployed to the
    wrong cluster is worse than no deployment.
    """
    if opts is None or (opts.provider is None and not opts.providers):
        raise ValueError(
            f"Unable to create {component} '{name}': no Kubernetes provider given; pass "
            "opts=pulumi.ResourceOptions(provider=<pulumi_kubernetes.Provider>)."
        )


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a child: parented to the component (so it inherits the provider)."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def holds_data(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a child whose deletion or replacement loses records: the tenant's Namespace (it
    takes every volume claim in it along), the PostgreSQL StatefulSet (its claim template holds the
    databases) and an app's media claim. Pulumi's ``protect``: the engine refuses, at preview, to
    delete or replace it; cgkit lets that through only on purpose (``--allow-data-loss CODE``).
    Redis is not one: it holds a cache and the Celery queue, not records (Archiefwet)."""
    return pulumi.ResourceOptions(parent=parent, protect=True, **kwargs)
