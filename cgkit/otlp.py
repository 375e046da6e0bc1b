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

from urllib.parse import quote

from cgkit.conventions import OTEL_GEMEENTE
from cgkit.netpeer import Destination, Wording
from cgkit.netpeer import destination as _destination

EXAMPLE = "http://otel-collector.observability.svc:4318"
VALID = (f"a valid endpoint is http(s)://<host>:<port> where the host is a cluster Service (<service>.<namespace>.svc"
         f"[.cluster.local]) or an IP address, e.g. {EXAMPLE}")
WORDING = Wording(
    who="collector", valid=VALID, scheme="the apps speak OTLP over http or https",
    path="the endpoint is the collector's base URL (the SDK adds /v1/traces and the like)",
    port="OTLP uses 4317 for grpc, 4318 for http/protobuf",
    forward="run a collector in the cluster that forwards to it")

__all__ = ["Destination", "EXAMPLE", "VALID", "destination", "resource_attributes"]


def destination(endpoint: str) -> Destination:
    """Parse an OTLP endpoint URL (``OTEL_EXPORTER_OTLP_ENDPOINT``) into its NetworkPolicy peer
    (`cgkit.netpeer.destination`: a cluster Service outside the tenant namespaces, or one address).
    Raises ValueError with a sentence saying what is wrong and what is valid."""
    return _destination(endpoint, WORDING)


def resource_attributes(*, service: str, namespace: str, code: str, environment: str) -> str:
    """The ``OTEL_RESOURCE_ATTRIBUTES`` value of one app container (W3C Baggage syntax, values
    percent-encoded): ``service.name=<service>,service.namespace=<namespace>,
    cgkit.gemeente.code=<CODE>,deployment.environment.name=<environment>``."""
    attributes = {"service.name": service, "service.namespace": namespace, OTEL_GEMEENTE: code.upper(),
                  "deployment.environment.name": environment}
    return ",".join(f"{key}={quote(value, safe='')}" for key, value in attributes.items())
