"""Names and labels every cgkit object carries; the one place they are defined.

Components write these labels, policies read them, tests assert them. Label keys follow the
Kubernetes recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/
common-labels/) plus cgkit's own prefix for the tenant and the municipality code.
"""

LABEL_NAME = "app.kubernetes.io/name"  #: the catalog key of the app, e.g. "openzaak"
LABEL_COMPONENT = "app.kubernetes.io/component"  #: "web", "worker", "beat", "postgresql", "redis"
LABEL_PART_OF = "app.kubernetes.io/part-of"  #: always PART_OF
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"  #: always MANAGED_BY
LABEL_GEMEENTE = "cgkit.io/gemeente-code"  #: the CBS code, upper case, e.g. "GM0344"
LABEL_TENANT = "cgkit.io/tenant"  #: on tenant Namespaces: the namespace name (== code, lower case)
#: The OpenTelemetry resource attribute carrying the CBS code in every app's telemetry (cgkit.otlp).
OTEL_GEMEENTE = "cgkit.gemeente.code"

#: A namespace name (and other RFC 1123 label names): at most 63 lower-case letters, digits and '-',
#: starting and ending with a letter or digit (kubernetes.io/docs/concepts/overview/working-with-objects/names/).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_LABEL_HINT = "at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"

PART_OF = "common-ground"
MANAGED_BY = "cgkit"

#: Pod Security Admission labels (https://kubernetes.io/docs/concepts/security/pod-security-admission/).
PSA_MODES = ("enforce", "audit", "warn")
PSA_LEVEL = "restricted"


def tenant_namespace(code: str) -> str:
    """Return the tenant namespace for a CBS code: ``"GM0344"`` -> ``"gm0344"``.

    Derived from the code, never from the name, so two municipalities called Bergen (GM0373,
    GM0893) never collide. The result is a valid RFC 1123 label for any valid CBS code.
    """
    return code.lower()


def stack_name(env: str, target: str) -> str:
    """Return the Pulumi stack name for an environment and a target (a CBS code or ``"platform"``).

    ``stack_name("sandbox", "GM0344") == "sandbox.gm0344"``; ``stack_name("sandbox", "platform")
    == "sandbox.platform"``.
    """
    return f"{env}.{target.lower()}"


#: Kubernetes' own identity prefixes: every user and group whose name starts with ``system:`` is made
#: by the API server or its components (``system:authenticated`` is every logged-in user,
#: ``system:unauthenticated`` every anonymous request, ``system:masters`` bypasses RBAC,
#: ``system:serviceaccounts[:<ns>]`` every service account). Source: Kubernetes docs, "Using RBAC
#: Authorization: Referring to subjects" and "Authenticating: Anonymous requests".
BUILTIN_IDENTITY_PREFIXES = ("system:",)
#: Built-in identities outside the ``system:`` prefix: kubeadm binds ``kubeadm:cluster-admins`` to
#: cluster-admin (kubeadm docs, "Implementation details: RBAC", since v1.29).
BUILTIN_IDENTITIES = frozenset({"kubeadm:cluster-admins"})


def is_builtin_identity(name: str) -> bool:
    """Tell whether a user or group name is one of Kubernetes' own identities (see
    ``BUILTIN_IDENTITY_PREFIXES``). Compared case-insensitively: ``System:Masters`` is not the
    built-in group, but a name that only differs in case is refused too, as it can only mislead.
    """
    folded = name.casefold()
    return folded.startswith(BUILTIN_IDENTITY_PREFIXES) or folded in BUILTIN_IDENTITIES
