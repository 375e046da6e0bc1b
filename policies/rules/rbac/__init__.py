"""RBAC: no cluster-admin, no wildcards, no exec into pods for tenant roles."""

from __future__ import annotations

from cgkit.conventions import is_builtin_identity
from policies.model import Enforcement, rule

ROLE_KINDS = frozenset({"Role", "ClusterRole"})
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
#: Subresources that give a shell or a stream into a running container.
EXEC_RESOURCES = frozenset({"pods/exec", "pods/attach", "pods/portforward"})


def _rules(obj):
    for i, r in enumerate(obj.get("rules") or ()):
        yield f"rules[{i}]", r


@rule("CGK-RBAC-001", title="Nothing is bound to cluster-admin", kinds=BINDING_KINDS,
      controls=("BIO2:8.2", "BIO2:5.15", "Haven:rbac", "NSA:authz"),
      rationale="""cluster-admin is every permission on every object in every namespace; bound to a
      municipality's group or an app's service account it erases the tenant boundary.""")
def cluster_admin(obj, ctx):
    ref = obj.get("roleRef") or {}
    if ref.get("kind") == "ClusterRole" and ref.get("name") == "cluster-admin":
        yield "roleRef.name", "the binding grants cluster-admin; bind a namespaced role such as edit or view instead"


@rule("CGK-RBAC-002", title="Roles name their verbs, resources and API groups (no wildcards)", kinds=ROLE_KINDS,
      controls=("BIO2:8.2", "BIO2:5.15", "Haven:rbac", "NSA:authz"),
      rationale="""A '*' grants every verb or resource, including those added by future API versions and
      CRDs; least privilege needs the list spelled out.""")
def wildcards(obj, ctx):
    for path, r in _rules(obj):
        for field in ("verbs", "resources", "apiGroups"):
            if "*" in (r.get(field) or ()):
                yield f"{path}.{field}", f"{path}.{field} contains '*'; list the {field} the role needs"


@rule("CGK-RBAC-003", title="Roles do not grant exec, attach or port-forward into pods", kinds=ROLE_KINDS,
      enforcement=Enforcement.ADVISORY, controls=("BIO2:8.18.01", "BIO2:8.2", "NSA:authz"),
      rationale="""exec and attach are privileged utilities: they bypass the app's own access control and
      read its secrets. BIO2 8.18 wants such use exceptional and logged, so it is reported for review.""")
def pod_exec(obj, ctx):
    for path, r in _rules(obj):
        granted = EXEC_RESOURCES.intersection(r.get("resources") or ())
        verbs = set(r.get("verbs") or ())
        if granted and verbs & {"create", "get", "*"}:
            yield f"{path}.resources", f"the role grants {', '.join(sorted(granted))}; remove it or document the need"


@rule("CGK-RBAC-004", title="Nothing is bound to Kubernetes' built-in users and groups", kinds=BINDING_KINDS,
      controls=("BIO2:8.2", "BIO2:5.15", "Haven:rbac", "NSA:authz"),
      rationale="""system:authenticated is every user of the cluster, system:unauthenticated every
      anonymous request, system:serviceaccounts every pod's identity, and system:masters bypasses RBAC
      altogether. A binding to one of them hands a municipality's role to everyone; tenant roles are
      bound to the municipality's own named groups only.""")
def builtin_subjects(obj, ctx):
    role = (obj.get("roleRef") or {}).get("name", "its role")
    for i, subject in enumerate(obj.get("subjects") or ()):
        name = subject.get("name")
        if subject.get("kind") in ("Group", "User") and isinstance(name, str) and is_builtin_identity(name):
            yield (f"subjects[{i}].name", f"the binding grants {role} to the built-in {subject['kind'].lower()} "
                   f"{name}; bind the municipality's own group instead")
