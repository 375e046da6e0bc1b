"""The platform program (stack ``<env>.platform``): the cluster-wide pieces every tenant relies on.

Creates, once per environment: the ingress controller's Namespace (Pod Security Admission
``restricted``), the IngressClass, and the StorageClass for app media and databases. Tenants
(stacks ``<env>.<code>``) read these names from this stack's outputs through a StackReference,
so a tenant cannot deploy before its platform exists.

Outputs: ``ingressClass``, ``ingressNamespace``, ``storageClass`` (all str).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from cgkit import conventions
from cgkit.config.model import EnvironmentFile


def provider(environment: EnvironmentFile) -> k8s.Provider:
    """Return the Kubernetes provider for the environment's cluster.

    The sandbox's kubeconfig when ``cluster.sandbox`` is set, else ``cluster.kubeconfig`` (a path),
    else the ambient kubeconfig.
    """
    return k8s.Provider("cluster", kubeconfig=kubeconfig_path(environment), context=environment.cluster.context)


def kubeconfig_path(environment: EnvironmentFile) -> str | None:
    """Return the kubeconfig path the environment's provider uses (None = ambient)."""
    if environment.cluster.sandbox:
        from cgkit import sandbox
        from cgkit.project import find_root

        return str(sandbox.kubeconfig_path(find_root()))
    return environment.cluster.kubeconfig


def deploy(environment: EnvironmentFile) -> None:
    """Declare the platform resources of ``environment`` and export their names."""
    opts = pulumi.ResourceOptions(provider=provider(environment))
    labels = {conventions.LABEL_MANAGED_BY: conventions.MANAGED_BY, conventions.LABEL_PART_OF: conventions.PART_OF}
    ingress = environment.ingress
    namespace = k8s.core.v1.Namespace(
        "ingress-namespace",
        metadata={"name": ingress.controller_namespace,
                  "labels": {**labels, **{f"pod-security.kubernetes.io/{mode}": conventions.PSA_LEVEL
                                          for mode in conventions.PSA_MODES}}},
        opts=opts,
    )
    ingress_class = k8s.networking.v1.IngressClass(
        "ingress-class",
        metadata={"name": ingress.class_name, "labels": labels},
        spec={"controller": ingress.controller},
        opts=opts,
    )
    storage_class = k8s.storage.v1.StorageClass(
        "storage-class",
        metadata={"name": environment.storage_class, "labels": labels},
        provisioner=environment.storage_provisioner,
        reclaim_policy="Retain",
        volume_binding_mode="Immediate",
        opts=opts,
    )
    pulumi.export("ingressClass", ingress_class.metadata["name"])
    pulumi.export("ingressNamespace", namespace.metadata["name"])
    pulumi.export("storageClass", storage_class.metadata["name"])
