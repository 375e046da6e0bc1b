"""Endpoints a NetworkPolicy can name exactly: a Service of the cluster, or one IP address.

A tenant's pods may reach a platform service outside their namespace (the OpenTelemetry collector,
``cgkit.otlp``; the backup object store, ``cgkit.backups``) only if its NetworkPolicies can allow
exactly that service. A NetworkPolicy matches pods by namespace and labels, or packets by address
(``ipBlock``); it cannot match a host name. So an endpoint is accepted when its host is

* ``<service>.<namespace>.svc[.cluster.local]``, in a platform namespace (not a tenant's
  ``gmNNNN``, ``default`` or ``kube-*``): the peer is that namespace; or
* one IP address that is a real single host: the peer is ``<ip>/32`` or ``<ip>/128``.

Traffic to a Service's ClusterIP reaches the policy already translated to a pod address, so an
address is for a service outside the cluster and a Service is named by its DNS name
(Kubernetes docs, "Network Policies": "ipBlock ... cluster-external IPs").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cgkit.urls import redact, refuse_credentials

#: ``<service>.<namespace>.svc`` with the default cluster domain optional.
_CLUSTER_SERVICE = re.compile(r"^(?P<service>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\."
                              r"(?P<namespace>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\.svc(\.cluster\.local)?$")
#: Tenant namespaces (``conventions.tenant_namespace``): a service there would open every tenant to one.
_TENANT_NAMESPACE = re.compile(r"^gm\d{4}$")


@dataclass(frozen=True)
class Destination:
    """Where an endpoint's packets go, as a NetworkPolicy names them: exactly one of ``namespace`` (a
    cluster Service's namespace) or ``cidr`` (``<ip>/32`` or ``<ip>/128``) is set; ``port`` is TCP."""

    port: int
    namespace: str | None = None
    cidr: str | None = None

    def peer(self) -> dict:
        """The NetworkPolicy peer (snake_case, as pulumi_kubernetes takes it): the namespace (any pod
        in it: its pod labels are the platform team's choice) or the address."""
        if self.namespace is not None:
            return {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": self.namespace}}}
        return {"ip_block": {"cidr": self.cidr}}


@dataclass(frozen=True)
class Wording:
    """How the errors of one kind of endpoint speak: ``who`` names the service ("collector"),
    ``valid`` is the sentence that ends every error (what a valid endpoint looks like), ``scheme``,
    ``path`` and ``port`` say why http(s), no path and an explicit port, and ``forward`` what to do
    about a service outside the cluster known only by name."""

    who: str
    valid: str
    scheme: str
    path: str
    port: str
    forward: str


def destination(endpoint: str, words: Wording) -> Destination:
    """Parse ``endpoint`` (``http(s)://<host>:<port>``) into its NetworkPolicy peer.

    Accepts ``http`` or ``https``, an explicit port, no user, path, query or fragment, and a host that
    is a cluster Service outside the tenant namespaces or one IP address (see `address_cidr`). Every
    message shows the endpoint redacted (`cgkit.urls`): it lands in a ConfigMap and in logs.

    Raises:
        ValueError: a sentence saying what is wrong and, last, ``words.valid``.
    """
    valid = words.valid
    shown = redact(endpoint)
    if not endpoint.isascii() or not endpoint.isprintable() or " " in endpoint:
        # urlsplit drops tabs and newlines, so the check would pass a value the clients refuse
        raise ValueError(f"{shown!r} has a space, a control character or a non-ASCII character; {valid}")
    refuse_credentials(endpoint, f"the endpoint lands in the tenants' objects and logs; remove them; {valid}")
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError as err:
        raise ValueError(f"'{shown}' is not a URL ({str(err).split(' as ', 1)[0]}); {valid}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"'{shown}' has scheme '{url.scheme}'; {words.scheme}; {valid}")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError(f"'{shown}' has a path, query or fragment; {words.path}; {valid}")
    if not port:
        raise ValueError(f"'{shown}' has no port; write it ({words.port}); {valid}")
    host = url.hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return Destination(port=port, cidr=address_cidr(shown, ip, words))
    service = _CLUSTER_SERVICE.match(host)
    if service is None:
        raise ValueError(f"'{shown}': {host or 'the host'} is not a cluster Service, and a NetworkPolicy "
                         f"cannot allow a host name outside the cluster (only an address); {words.forward}, "
                         f"or use its IP address; {valid}")
    namespace = service["namespace"]
    if _TENANT_NAMESPACE.match(namespace) or namespace == "default" or namespace.startswith("kube-"):
        raise ValueError(f"'{shown}': the {words.who} must run in a platform namespace of its own, not in "
                         f"'{namespace}' (a tenant's, default or kube-*); {valid}")
    return Destination(port=port, namespace=namespace)


def address_cidr(endpoint: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, words: Wording) -> str:
    """The NetworkPolicy ``ipBlock.cidr`` of a service's address (``<ip>/32`` or ``<ip>/128``).

    Raises ValueError for an address that is no single host a NetworkPolicy can name: loopback or
    unspecified (the pod itself), link-local (``169.254.169.254`` is a cloud's metadata service,
    ``fe80::`` needs a zone), multicast or broadcast, an IPv6 zone (``%eth0``, not CIDR syntax) and an
    IPv4-mapped IPv6 address (the packets go out as IPv4, which a /128 never matches).
    """
    valid = words.valid
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        raise ValueError(f"'{endpoint}': {ip} is the IPv4 address {mapped} written as IPv6; write {mapped} "
                         f"(a NetworkPolicy matches the address the packets carry); {valid}")
    if getattr(ip, "scope_id", None):
        raise ValueError(f"'{endpoint}': {ip} names a network interface (%{ip.scope_id}), which a "
                         f"NetworkPolicy cannot; {valid}")
    if ip.is_loopback or ip.is_unspecified:
        raise ValueError(f"'{endpoint}': {ip} is the pod itself or no address; {valid}")
    if ip.is_link_local or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"'{endpoint}': {ip} is a link-local, multicast or broadcast address, not a "
                         f"{words.who}'s; {valid}")
    return f"{ip}/{ip.max_prefixlen}"
