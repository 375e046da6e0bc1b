"""OpenTelemetry export: where an environment's OTLP endpoint is, and what every app reports.

The Common Ground apps export traces and metrics with the OpenTelemetry Python SDK, configured by
the standard ``OTEL_*`` variables (research/commonground.md §2.1; Open Zaak's docs,
"Open Telemetry Configuration": OTLP over ``grpc`` or ``http/protobuf``, on unless
``OTEL_SDK_DISABLED=true``). An environment names one collector (``observability.otlp_endpoint``);
the tenants' NetworkPolicies must allow exactly it, so the endpoint must be something a
NetworkPolicy can name: a Service of the cluster (its namespace) or an IP address. A host name
outside the cluster is refused: a NetworkPolicy cannot match a name, and opening the port to every
address from every tenant is not "exactly the collector" (run a collector in the cluster that
forwards to it instead). An address is meant for a collector outside the cluster: traffic to a
Service's ClusterIP reaches the policy already translated to a pod address, so a Service is named
by its DNS name.

Resource attribute names are OpenTelemetry semantic conventions (``service.name``,
``service.namespace``, ``deployment.environment.name`` — stable since semconv 1.27, which replaced
``deployment.environment``) plus cgkit's ``cgkit.gemeente.code`` (``conventions.OTEL_GEMEENTE``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from cgkit.conventions import OTEL_GEMEENTE

#: ``<service>.<namespace>.svc`` with the default cluster domain optional.
_CLUSTER_SERVICE = re.compile(r"^(?P<service>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\."
                              r"(?P<namespace>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.svc(\.cluster\.local)?$")
#: Tenant namespaces (``conventions.tenant_namespace``): a collector there would open every tenant to one.
_TENANT_NAMESPACE = re.compile(r"^gm\d{4}$")
EXAMPLE = "http://otel-collector.observability.svc:4318"
VALID = (f"a valid endpoint is http(s)://<host>:<port> where the host is a cluster Service (<service>.<namespace>.svc"
         f"[.cluster.local]) or an IP address, e.g. {EXAMPLE}")


@dataclass(frozen=True)
class Destination:
    """Where an OTLP endpoint's packets go, as a NetworkPolicy names it: exactly one of
    ``namespace`` (a cluster Service's namespace) or ``cidr`` (``<ip>/32`` or ``<ip>/128``) is set."""

    port: int
    namespace: str | None = None
    cidr: str | None = None


def destination(endpoint: str) -> Destination:
    """Parse an OTLP endpoint URL (``OTEL_EXPORTER_OTLP_ENDPOINT``) into its NetworkPolicy peer.

    Accepts ``http`` or ``https``, an explicit port, no user, path, query or fragment, and a host
    that is a cluster Service outside the tenant namespaces or one IP address (see `_collector_cidr`).
    Raises ValueError with a sentence saying what is wrong and what is valid.
    """
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError as err:
        raise ValueError(f"'{endpoint}' is not a URL ({err}); {VALID}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"'{endpoint}' has scheme '{url.scheme}'; the apps speak OTLP over http or https; {VALID}")
    if url.username is not None or url.password is not None:
        raise ValueError(f"'{endpoint}' carries credentials, which would land in a ConfigMap; remove them; {VALID}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"'{endpoint}' has a path, query or fragment; the endpoint is the collector's base "
                         f"URL (the SDK adds /v1/traces and the like); {VALID}")
    host = url.hostname or ""
    if not port:
        raise ValueError(f"'{endpoint}' has no port; write it (OTLP uses 4317 for grpc, 4318 for "
                         f"http/protobuf); {VALID}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return Destination(port=port, cidr=_collector_cidr(endpoint, ip))
    service = _CLUSTER_SERVICE.match(host)
    if service is None:
        raise ValueError(f"'{endpoint}': {host or 'the host'} is not a cluster Service, and a NetworkPolicy "
                         f"cannot allow a host name outside the cluster (only an address); run a collector "
                         f"in the cluster that forwards to it, or use its IP address; {VALID}")
    namespace = service["namespace"]
    if _TENANT_NAMESPACE.match(namespace) or namespace == "default" or namespace.startswith("kube-"):
        raise ValueError(f"'{endpoint}': the collector must run in a platform namespace of its own, not in "
                         f"'{namespace}' (a tenant's, default or kube-*); {VALID}")
    return Destination(port=port, namespace=namespace)


def _collector_cidr(endpoint: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The NetworkPolicy ``ipBlock.cidr`` of a collector's address (``<ip>/32`` or ``<ip>/128``).

    Raises ValueError for an address that is no single collector a NetworkPolicy can name: loopback
    or unspecified (the pod itself), link-local (``169.254.169.254`` is a cloud's metadata service,
    ``fe80::`` needs a zone), multicast or broadcast, an IPv6 zone (``%eth0``, not CIDR syntax) and
    an IPv4-mapped IPv6 address (the packets go out as IPv4, which a /128 never matches).
    """
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        raise ValueError(f"'{endpoint}': {ip} is the IPv4 address {mapped} written as IPv6; write {mapped} "
                         f"(a NetworkPolicy matches the address the packets carry); {VALID}")
    if getattr(ip, "scope_id", None):
        raise ValueError(f"'{endpoint}': {ip} names a network interface (%{ip.scope_id}), which a "
                         f"NetworkPolicy cannot; {VALID}")
    if ip.is_loopback or ip.is_unspecified:
        raise ValueError(f"'{endpoint}': {ip} is the pod itself or no address; {VALID}")
    if ip.is_link_local or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"'{endpoint}': {ip} is a link-local, multicast or broadcast address, not a "
                         f"collector's; {VALID}")
    return f"{ip}/{ip.max_prefixlen}"


def resource_attributes(*, service: str, namespace: str, code: str, environment: str) -> str:
    """The ``OTEL_RESOURCE_ATTRIBUTES`` value of one app container (W3C Baggage syntax, values
    percent-encoded): ``service.name=<service>,service.namespace=<namespace>,
    cgkit.gemeente.code=<CODE>,deployment.environment.name=<environment>``."""
    attributes = {"service.name": service, "service.namespace": namespace, OTEL_GEMEENTE: code.upper(),
                  "deployment.environment.name": environment}
    return ",".join(f"{key}={quote(value, safe='')}" for key, value in attributes.items())
