"""Network exposure: Service types, external IPs, Ingress TLS and hosts, allow-all NetworkPolicies."""

from __future__ import annotations

from policies.model import key_path, rule

#: Ingress annotations that switch the HTTP-to-HTTPS redirect off, per controller.
REDIRECT_OFF_ANNOTATIONS = ("nginx.ingress.kubernetes.io/ssl-redirect", "ingress.kubernetes.io/ssl-redirect")
EXPOSED_SERVICE_TYPES = frozenset({"NodePort", "LoadBalancer"})
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


@rule("CGK-NET-001", title="Tenant Services are ClusterIP; traffic enters through the shared ingress",
      kinds={"Service"}, controls=("BIO2:8.20", "BIO2:8.22", "Haven:private-network"),
      rationale="""A NodePort or LoadBalancer Service in a tenant namespace opens a port on every node or a
      public address, outside the ingress controller's TLS, logging and rate limits.""")
def service_type(obj, ctx):
    kind = (obj.get("spec") or {}).get("type")
    if kind in EXPOSED_SERVICE_TYPES and ctx.in_tenant(obj):
        yield "spec.type", f"the Service is of type {kind} in a tenant namespace; use ClusterIP and an Ingress"


@rule("CGK-NET-002", title="Services do not claim external IPs", kinds={"Service"},
      controls=("BIO2:8.20", "Haven:private-network"),
      rationale="""spec.externalIPs lets a Service capture traffic for any address routed to the nodes,
      including addresses of other tenants or services (CVE-2020-8554).""")
def external_ips(obj, ctx):
    if (obj.get("spec") or {}).get("externalIPs"):
        yield "spec.externalIPs", "the Service sets externalIPs; remove them"


@rule("CGK-NET-003", title="Ingresses name their hosts and serve every host over TLS", kinds={"Ingress"},
      controls=("BIO2:8.24", "BIO2:8.21.04", "Haven:https", "NSA:tls"),
      rationale="""Dutch government websites must use HTTPS (Besluit beveiligde verbinding); an Ingress rule
      without a host catches every name, and a host without a TLS entry is served in clear text.""")
def ingress_tls(obj, ctx):
    spec = obj.get("spec") or {}
    covered = {host for tls in spec.get("tls") or () for host in tls.get("hosts") or ()}
    for i, r in enumerate(spec.get("rules") or ()):
        host = r.get("host")
        if not host:
            yield f"spec.rules[{i}].host", "the rule has no host and would serve every name; set the municipality's host"
        elif host not in covered:
            yield "spec.tls", f"host {host} has no TLS entry; add it to spec.tls[].hosts with a secretName"
    if not spec.get("rules"):
        yield "spec.rules", "the Ingress has no rules (a default backend serves every name); add a rule per host"


@rule("CGK-NET-004", title="Ingress hosts lie within the municipality's domain", kinds={"Ingress"},
      controls=("BIO2:8.20", "BIO2:8.22"),
      rationale="""A tenant may only publish names under its own domain; otherwise one municipality could
      hijack another's hostname on the shared ingress controller. Needs the domain from the context.""")
def ingress_domain(obj, ctx):
    if not ctx.domain:
        return
    domain = ctx.domain.lower().rstrip(".")
    spec = obj.get("spec") or {}
    hosts = [(f"spec.rules[{i}].host", r.get("host")) for i, r in enumerate(spec.get("rules") or ())]
    hosts += [(f"spec.tls[{i}].hosts[{j}]", h) for i, t in enumerate(spec.get("tls") or ())
              for j, h in enumerate(t.get("hosts") or ())]
    for path, host in hosts:
        name = (host or "").lower().rstrip(".")
        if name and (name.startswith("*") or not (name == domain or name.endswith("." + domain))):
            yield path, f"host {host} is not within {domain}; use {domain} or a name under it (no wildcards)"


def _open_peers(peers, path):
    for j, peer in enumerate(peers):
        if peer == {}:
            yield f"{path}[{j}]", "selects every pod in every namespace"
        elif peer.get("namespaceSelector") == {} and not peer.get("podSelector"):
            yield f"{path}[{j}].namespaceSelector", "selects every pod in every namespace"
        elif (peer.get("ipBlock") or {}).get("cidr") in OPEN_CIDRS:
            yield f"{path}[{j}].ipBlock.cidr", "admits every address"


@rule("CGK-NET-005", title="NetworkPolicies do not allow all traffic", kinds={"NetworkPolicy"},
      controls=("BIO2:8.22", "NSA:2.0"),
      rationale="""An allow rule without peers and ports, an empty peer, or an all-namespaces selector
      re-opens what the tenant's default-deny closed, to every pod of every municipality.""")
def allow_all(obj, ctx):
    spec = obj.get("spec") or {}
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, r in enumerate(spec.get(direction) or ()):
            path = f"spec.{direction}[{i}]"
            if not r.get(peers_key) and not r.get("ports"):
                yield path, f"{path} has no {peers_key} and no ports, so it allows all {direction}; name the peers"
            for peer_path, why in _open_peers(r.get(peers_key) or (), f"{path}.{peers_key}"):
                if direction == "egress" and why == "admits every address":
                    continue  # egress to the internet is an app need (e.g. notifications); ports limit it
                yield peer_path, f"{peer_path} {why}; select the namespaces and pods by label"


@rule("CGK-NET-006", title="Ingresses keep the HTTP-to-HTTPS redirect", kinds={"Ingress"},
      controls=("BIO2:8.24", "Haven:https", "NSA:tls"),
      rationale="""Government sites must redirect plain HTTP to HTTPS (and send HSTS). Switching the
      controller's redirect off serves the app, its login pages included, over clear text.""")
def https_redirect(obj, ctx):
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    for key in REDIRECT_OFF_ANNOTATIONS:
        if str(annotations.get(key, "")).lower() == "false":
            yield key_path("metadata.annotations", key), f"{key} is \"false\"; remove the annotation to keep the redirect"
