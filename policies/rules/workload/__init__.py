"""Workload hygiene: resources, probes, service-account tokens, image provenance, labels, namespaces."""

from __future__ import annotations

from cgkit import conventions
from policies.model import Enforcement, key_path, labels, meta, rule
from policies.podspec import POD_KINDS, containers, pod_metadata, pod_spec

#: Kinds whose pods serve traffic for as long as they live (probes make sense for them).
LONG_RUNNING_KINDS = POD_KINDS - {"Job", "CronJob"}
RESOURCE_FIELDS = tuple((section, res) for section in ("requests", "limits") for res in ("cpu", "memory"))
#: API versions the API server no longer serves: apiVersion -> (removed in, use instead).
#: Source: the Kubernetes deprecated API migration guide (kubernetes.io/docs/reference/using-api/deprecation-guide/).
REMOVED_API_VERSIONS = {
    "extensions/v1beta1": ("1.22", "apps/v1 or networking.k8s.io/v1"),
    "apps/v1beta1": ("1.16", "apps/v1"), "apps/v1beta2": ("1.16", "apps/v1"),
    "networking.k8s.io/v1beta1": ("1.22", "networking.k8s.io/v1"),
    "rbac.authorization.k8s.io/v1beta1": ("1.22", "rbac.authorization.k8s.io/v1"),
    "rbac.authorization.k8s.io/v1alpha1": ("1.22", "rbac.authorization.k8s.io/v1"),
    "admissionregistration.k8s.io/v1beta1": ("1.22", "admissionregistration.k8s.io/v1"),
    "apiextensions.k8s.io/v1beta1": ("1.22", "apiextensions.k8s.io/v1"),
    "certificates.k8s.io/v1beta1": ("1.22", "certificates.k8s.io/v1"),
    "coordination.k8s.io/v1beta1": ("1.22", "coordination.k8s.io/v1"),
    "scheduling.k8s.io/v1beta1": ("1.22", "scheduling.k8s.io/v1"),
    "batch/v1beta1": ("1.25", "batch/v1"), "policy/v1beta1": ("1.25", "policy/v1"),
    "discovery.k8s.io/v1beta1": ("1.25", "discovery.k8s.io/v1"), "events.k8s.io/v1beta1": ("1.25", "events.k8s.io/v1"),
    "node.k8s.io/v1beta1": ("1.25", "node.k8s.io/v1"),
    "autoscaling/v2beta1": ("1.25", "autoscaling/v2"), "autoscaling/v2beta2": ("1.26", "autoscaling/v2"),
    "storage.k8s.io/v1beta1": ("1.27", "storage.k8s.io/v1"),
    "flowcontrol.apiserver.k8s.io/v1beta1": ("1.26", "flowcontrol.apiserver.k8s.io/v1"),
    "flowcontrol.apiserver.k8s.io/v1beta2": ("1.29", "flowcontrol.apiserver.k8s.io/v1"),
    "flowcontrol.apiserver.k8s.io/v1beta3": ("1.32", "flowcontrol.apiserver.k8s.io/v1"),
}
#: Namespaces no cgkit object belongs in.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
DEFAULT_REGISTRY = "docker.io"


def split_image(image: str) -> tuple[str, str, str | None, str | None]:
    """Split an image reference into ``(registry, repository, tag, digest)``.

    A first component without a dot, colon or ``localhost`` is a Docker Hub path, so
    ``"postgres:16"`` is ``("docker.io", "postgres", "16", None)``.
    """
    rest, _, digest = image.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    else:
        registry = DEFAULT_REGISTRY
    repository, colon, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
    return registry, repository, (tag if colon else None), (digest or None)


def image_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    """True when the image's ``registry/repository`` lies under an allowed ``host[/path]`` entry.

    ``index.docker.io`` counts as ``docker.io``, so ``"postgres:16"`` is allowed by ``"docker.io"``.
    """
    registry, repository, _, _ = split_image(image)
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    full = f"{registry}/{repository}"
    return any(full == entry or full.startswith(entry.rstrip("/") + "/") for entry in allowed)


@rule("CGK-WKL-001", title="Containers declare CPU and memory requests and limits", kinds=POD_KINDS,
      controls=("BIO2:8.6", "NSA:4.0", "NSA:4.1"),
      rationale="""Requests let the scheduler place pods; limits stop one municipality's runaway worker
      from starving the others on a shared node. The tenant ResourceQuota also rejects pods without them.""")
def resources(obj, ctx):
    for c in containers(obj):
        if c.path.rsplit(".", 1)[-1].startswith("ephemeralContainers"):
            continue  # the API does not allow resources on ephemeral containers
        res = c.container.get("resources") or {}
        missing = [f"{section}.{name}" for section, name in RESOURCE_FIELDS if not (res.get(section) or {}).get(name)]
        if missing:
            yield c.at("resources"), f"container '{c.name}' has no {', '.join(missing)}; set them under resources"


@rule("CGK-WKL-002", title="Long-running containers have liveness and readiness probes", kinds=LONG_RUNNING_KINDS,
      controls=("BIO2:8.14", "Haven:availability"),
      rationale="""Without a readiness probe traffic reaches pods that cannot serve it; without a liveness
      probe a hung Django or Celery process is never restarted.""")
def probes(obj, ctx):
    pod = pod_spec(obj)
    for i, c in enumerate((pod.spec.get("containers") or ()) if pod else ()):
        for probe in ("livenessProbe", "readinessProbe"):
            if not c.get(probe):
                yield (pod.at(f"containers[{i}]", probe),
                       f"container '{c.get('name', '?')}' has no {probe}; add one (httpGet on the health endpoint, or exec)")


@rule("CGK-WKL-003", title="Service-account tokens are not mounted automatically", kinds=POD_KINDS | {"ServiceAccount"},
      controls=("NSA:1.11", "BIO2:5.17", "BIO2:8.2"),
      rationale="""The Common Ground apps never call the Kubernetes API. An automatically mounted token
      gives anyone who gets code execution in the pod an API credential for free.""")
def automount_token(obj, ctx):
    if obj.get("kind") == "ServiceAccount":
        if obj.get("automountServiceAccountToken") is not False:
            yield "automountServiceAccountToken", "the ServiceAccount mounts its token automatically; set automountServiceAccountToken: false"
        return
    pod = pod_spec(obj)
    if pod and pod.spec.get("automountServiceAccountToken") is not False:
        yield pod.at("automountServiceAccountToken"), "the pod mounts a service-account token; set automountServiceAccountToken: false"


@rule("CGK-WKL-004", title="Images are pinned by digest or by an explicit version tag", kinds=POD_KINDS,
      controls=("BIO2:8.9", "BIO2:8.19.01", "BIO2:8.8", "NSA:scan"),
      rationale="""An image without a tag, or tagged latest, changes under the same name: what was reviewed
      and scanned is not what runs, and rollbacks are impossible.""")
def image_pinned(obj, ctx):
    for c in containers(obj):
        image = c.container.get("image") or ""
        _, _, tag, digest = split_image(image)
        if not digest and tag in (None, "", "latest"):
            yield (c.at("image"), f"container '{c.name}' uses image '{image}' without a version; "
                   "pin it to a release tag (e.g. :1.15.0) or a digest (@sha256:...)")


@rule("CGK-WKL-005", title="Images come from the environment's allowed registries", kinds=POD_KINDS,
      controls=("BIO2:8.19.01", "BIO2:8.8", "NSA:scan"),
      rationale="""Only registries the platform team mirrors and scans may supply code to the cluster.
      Entries are ``host`` or ``host/path``. The allowed list is per environment; when it is not known, this rule does not judge.""")
def allowed_registry(obj, ctx):
    if ctx.allowed_registries is None:
        return
    for c in containers(obj):
        image = c.container.get("image") or ""
        if not image_allowed(image, ctx.allowed_registries):
            yield (c.at("image"), f"container '{c.name}' pulls {image}, which is not from an allowed registry; "
                   f"use one of: {', '.join(ctx.allowed_registries)}")


@rule("CGK-WKL-006", title="Tenant workloads carry the app, part-of and municipality labels", kinds=POD_KINDS,
      controls=("BIO2:8.9",),
      rationale="""The labels tie every pod to its app and municipality; reports, NetworkPolicies, quotas
      and incident response all select on them.""")
def required_labels(obj, ctx):
    if not ctx.in_tenant(obj):
        return
    code = ctx.code_for(ctx.namespace_of(obj))
    sets = [(labels(obj), "metadata.labels")]
    if obj.get("kind") != "Pod":  # a controller's pods carry the template's labels
        metadata, path = pod_metadata(obj)
        sets.append((metadata.get("labels") or {}, f"{path}.labels"))
    for present, path in sets:
        if not present.get(conventions.LABEL_NAME):
            yield key_path(path, conventions.LABEL_NAME), f"label {conventions.LABEL_NAME} is missing; set it to the app key (e.g. openzaak)"
        if present.get(conventions.LABEL_PART_OF) != conventions.PART_OF:
            yield key_path(path, conventions.LABEL_PART_OF), f"label {conventions.LABEL_PART_OF} must be {conventions.PART_OF}"
        found = present.get(conventions.LABEL_GEMEENTE)
        if not found or (code and found != code):
            yield (key_path(path, conventions.LABEL_GEMEENTE),
                   f"label {conventions.LABEL_GEMEENTE} is {found or 'missing'}; set it to {code or 'the CBS code'}")


@rule("CGK-WKL-007", title="Objects are not placed in default or kube-* namespaces", kinds=(),
      controls=("NSA:1.12", "BIO2:8.31"),
      rationale="""The default and kube-* namespaces have no tenant quota, PSA level or NetworkPolicy of
      their own, and kube-system holds the cluster's most privileged components.""")
def system_namespace(obj, ctx):
    namespace = meta(obj).get("namespace")
    if namespace in SYSTEM_NAMESPACES:
        yield "metadata.namespace", f"the object is placed in {namespace}; deploy it to the tenant or a platform namespace"


@rule("CGK-WKL-008", title="Objects use API versions the cluster still serves", kinds=(),
      controls=("BIO2:8.9", "BIO2:8.8"),
      rationale="""A manifest written for a removed API version (extensions/v1beta1 Ingress, batch/v1beta1
      CronJob, policy/v1beta1 PodDisruptionBudget) fails on apply after a cluster upgrade, or was never
      applied at all; Haven requires clusters to stay within three minor versions of the latest.""")
def removed_api_version(obj, ctx):
    removed = REMOVED_API_VERSIONS.get(str(obj.get("apiVersion")))
    if removed:
        yield "apiVersion", f"{obj.get('apiVersion')} was removed in Kubernetes {removed[0]}; use {removed[1]}"


@rule("CGK-WKL-009", title="Pods do not get Service links in their environment", kinds=POD_KINDS,
      enforcement=Enforcement.ADVISORY, controls=("BIO2:8.27.01",),
      rationale="""With enableServiceLinks (the default) every Service in the namespace becomes a set of
      environment variables in every pod: needless knowledge of neighbours, and variables such as
      REDIS_PORT that silently override an app's own settings. Apps find services through DNS.""")
def service_links(obj, ctx):
    pod = pod_spec(obj)
    if pod and pod.spec.get("enableServiceLinks") is not False:
        yield pod.at("enableServiceLinks"), "Service links are injected into the environment; set enableServiceLinks: false"
