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
from cgkit.project import find_root
from cgkit.cluster import environment_kubeconfig


def provider(environment: EnvironmentFile) -> k8s.Provider:
    """Return the Kubernetes provider for the environment's cluster.

    The sandbox's kubeconfig when ``cluster.sandbox`` is set, else ``cluster.kubeconfig`` (a path),
    else the ambient kubeconfig.
    """
    path = environment_kubeconfig(environment, find_root())
    return k8s.Provider("cluster", kubeconfig=str(path) if path else None, context=environment.cluster.context)


#: The platform stack's outputs a tenant relies on, and the environment field each must equal.
PLATFORM_OUTPUTS = {
    "ingressClass": lambda e: e.ingress.class_name,
    "ingressNamespace": lambda e: e.ingress.controller_namespace,
    "storageClass": lambda e: e.storage_class,
}


def platform_outputs(environment: EnvironmentFile) -> dict[str, str]:
    """Return the outputs the platform stack of ``environment`` exports (name -> value)."""
    return {name: field(environment) for name, field in PLATFORM_OUTPUTS.items()}


def require_platform(env: str, environment: EnvironmentFile) -> pulumi.Output[dict[str, str]]:
    """Refer to stack ``<env>.platform`` and check it provides what ``environment`` names.

    Returns its outputs (an Output the program exports, so the check always runs). The engine
    fails the tenant's update when the platform stack does not exist; the apply raises when the
    platform was deployed from a different environment file (names differ), naming the field.
    """
    ref = pulumi.StackReference(f"organization/{pulumi.get_project()}/{env}.platform")
    expected = platform_outputs(environment)

    def check(actual: dict[str, str]) -> dict[str, str]:
        for name, value in expected.items():
            if actual.get(name) != value:
                raise ValueError(f"stack {env}.platform exports {name}={actual.get(name)!r} but "
                                 f"environments/{env}/environment.yaml says {value!r}; run `cgkit up --env {env} platform`")
        return actual

    return pulumi.Output.all(**{name: ref.require_output(name) for name in expected}).apply(check)


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
