"""Size tiers S/M/L/XL: how big a municipality's tenant is, as data.

A tier sets four things:

* ``multiplier`` — scales every catalog resource figure (requests and limits) of the apps' web and
  worker containers, and of PostgreSQL; beat stays at 1.0 (a scheduler, one per app, never busy).
* ``web_replicas`` / ``worker_replicas`` — default replica counts (a municipality may override web
  replicas per app). Beat is always exactly 1: two beats schedule every periodic task twice.
* ``quota`` — the namespace ResourceQuota: total CPU/memory requests and limits, pods, PVCs, storage.
* ``limit_range`` — per-container defaults (for anything that does not set its own) and maxima.
* ``storage_factor`` — media volumes are the catalog size (the charts' 1Gi defaults) times the
  factor (PodiumD gives Open Zaak 10Gi). The database volume size is config (``database.storage``).

Where the numbers come from:

* Tier boundaries follow Open Zaak's ``docs/installation/hardware.rst``: inhabitants -> concurrent users
  (10k -> 100, 50k -> 250, 100k -> 500, 500k -> 1,000, 1M -> 2,000) and ~25 req/s needing 4 CPU /
  8 GB for the app, 50 req/s 6/12, 100 req/s 12/24, 200 req/s 16/32, DB about a third on top.
  S ≈ up to 25k inhabitants, M ≈ 25k–100k, L ≈ 100k–300k, XL ≈ above 300k (the four largest cities).
* Per-container figures are PodiumD's requests (research/commonground.md §3.3) times the multiplier.
* Each quota is the sum over *all six apps* at that tier plus PostgreSQL, Redis and the provisioning
  Job, with room for one rolling-update surge pod per Deployment, rounded up (the unit tests recompute
  the sum and fail if a tier no longer fits). The limits quota leaves room because limits are
  2–4× requests.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cgkit import conventions as cv
from components._quantity import cpu_millis, format_cpu, format_memory, memory_mib

Size = Literal["S", "M", "L", "XL"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quota(_Model):
    """ResourceQuota ``spec.hard`` values."""

    requests_cpu: str
    requests_memory: str
    limits_cpu: str
    limits_memory: str
    pods: int
    persistentvolumeclaims: int
    requests_storage: str

    def hard(self) -> dict[str, str]:
        """The ``spec.hard`` mapping as the API expects it. LoadBalancer/NodePort Services are
        forbidden in tenants (traffic enters through the shared ingress controller)."""
        return {
            "requests.cpu": self.requests_cpu,
            "requests.memory": self.requests_memory,
            "limits.cpu": self.limits_cpu,
            "limits.memory": self.limits_memory,
            "pods": str(self.pods),
            "persistentvolumeclaims": str(self.persistentvolumeclaims),
            "requests.storage": self.requests_storage,
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        }


class ContainerLimits(_Model):
    """LimitRange ``type: Container`` values."""

    default_cpu: str
    default_memory: str
    default_request_cpu: str
    default_request_memory: str
    max_cpu: str
    max_memory: str


class Tier(_Model):
    size: Size
    multiplier: float
    web_replicas: int
    worker_replicas: int
    storage_factor: int
    quota: Quota
    limit_range: ContainerLimits
    requests_scale: float = 1.0
    """Factor on requests only, set per environment (``resources.requests_scale``)."""


_DEFAULTS = dict(default_cpu="500m", default_memory="512Mi", default_request_cpu="50m",
                 default_request_memory="128Mi")

TIERS: dict[str, Tier] = {
    "S": Tier(
        size="S", multiplier=1.0, web_replicas=1, worker_replicas=1,
        storage_factor=5,
        quota=Quota(requests_cpu="5", requests_memory="16Gi", limits_cpu="20", limits_memory="32Gi",
                    pods=40, persistentvolumeclaims=10, requests_storage="50Gi"),
        limit_range=ContainerLimits(**_DEFAULTS, max_cpu="2", max_memory="4Gi"),
    ),
    "M": Tier(
        size="M", multiplier=1.5, web_replicas=2, worker_replicas=1,
        storage_factor=10,
        quota=Quota(requests_cpu="8", requests_memory="24Gi", limits_cpu="40", limits_memory="56Gi",
                    pods=50, persistentvolumeclaims=10, requests_storage="100Gi"),
        limit_range=ContainerLimits(**_DEFAULTS, max_cpu="4", max_memory="6Gi"),
    ),
    "L": Tier(
        size="L", multiplier=2.0, web_replicas=2, worker_replicas=2,
        storage_factor=20,
        quota=Quota(requests_cpu="12", requests_memory="40Gi", limits_cpu="56", limits_memory="88Gi",
                    pods=60, persistentvolumeclaims=10, requests_storage="250Gi"),
        limit_range=ContainerLimits(**_DEFAULTS, max_cpu="4", max_memory="8Gi"),
    ),
    "XL": Tier(
        size="XL", multiplier=3.0, web_replicas=3, worker_replicas=2,
        storage_factor=50,
        quota=Quota(requests_cpu="24", requests_memory="72Gi", limits_cpu="96", limits_memory="144Gi",
                    pods=80, persistentvolumeclaims=10, requests_storage="500Gi"),
        limit_range=ContainerLimits(**_DEFAULTS, max_cpu="8", max_memory="12Gi"),
    ),
}


def tier(size: str) -> Tier:
    """Return the tier for ``"S"``, ``"M"``, ``"L"`` or ``"XL"``."""
    try:
        return TIERS[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(TIERS)}") from None


def _quantity(resource: str, value: str) -> int:
    """A quota or container quantity in millicores (cpu) or MiB (memory)."""
    if resource == "cpu":
        return cpu_millis(value)
    return int(value[:-2]) * 1024 * 1024 if value.endswith("Ti") else memory_mib(value)


def _pods_at_rollout(workload: dict, surge: bool = True) -> int:
    """Pods a workload runs at most: replicas, plus the 25 % surge of a RollingUpdate Deployment."""
    spec = workload["spec"]
    replicas = 1 if workload["kind"] == "Job" else spec.get("replicas", 1)
    rolling = workload["kind"] == "Deployment" and spec.get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    return replicas + (math.ceil(replicas * 0.25) if rolling and surge else 0)


_KEYS = tuple(f"{section}.{res}" for section in ("requests", "limits") for res in ("cpu", "memory"))


def _need(workload: dict, count: int) -> dict[str, int]:
    """Requests/limits (millicores, MiB) and pods of ``count`` pods of ``workload``."""
    need = {key: 0 for key in _KEYS}
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for key in _KEYS:
            section, res = key.split(".")
            need[key] += count * _quantity(res, container["resources"][section][res])
    return {**need, "pods": count}


def _total(needs: list[dict[str, int]]) -> dict[str, int]:
    return {key: sum(n[key] for n in needs) for key in (*_KEYS, "pods")}


def quota_shortfalls(manifests: list[dict]) -> list[str]:
    """Compare what a tenant's workloads need at their peak with its ResourceQuota.

    Two peaks, each checked: a rolling update (every Deployment at replicas plus the 25 % surge,
    Kubernetes' default maxSurge, and the StatefulSets) and a release's Jobs phase (the old pods
    at their replicas while each app runs one Job: its migration and setup Jobs run one after the
    other, and its Deployments roll only after them; finished Job pods leave the quota). Sums
    requests/limits of cpu and memory and the pod count, against the ``hard`` of the tenant's
    ResourceQuota in ``manifests``. Returns one sentence per exceeded quota, e.g.
    ``"limits.cpu: the workloads need 24 cores, the quota allows 20"``; empty when it all fits.
    Without the quota would reject pods at admission and the rollout would never become Available.
    """
    quota = next((m for m in manifests if m["kind"] == "ResourceQuota"), None)
    if quota is None:
        return []
    hard = quota["spec"]["hard"]
    running = [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    jobs: dict[str, dict[str, int]] = {}  # per app: its largest Job (one runs at a time)
    for job in (m for m in manifests if m["kind"] == "Job"):
        app = job["metadata"].get("labels", {}).get(cv.LABEL_NAME, job["metadata"]["name"])
        need = _need(job, 1)
        jobs[app] = {key: max(need[key], jobs.get(app, need)[key]) for key in need}
    rolling = _total([_need(w, _pods_at_rollout(w)) for w in running])
    releasing = _total([_need(w, _pods_at_rollout(w, surge=False)) for w in running] + list(jobs.values()))
    peak = {key: max(rolling[key], releasing[key]) for key in rolling}
    shortfalls = [f"{key}: the workloads need {_shown(key, peak[key])}, the quota allows {hard[key]}"
                  for key in _KEYS if peak[key] > _quantity(key.split(".")[1], hard[key])]
    if peak["pods"] > int(hard["pods"]):
        shortfalls.append(f"pods: the workloads run up to {peak['pods']} pods, the quota allows {hard['pods']}")
    return shortfalls


def _shown(key: str, amount: int) -> str:
    return format_cpu(amount) if key.endswith("cpu") else format_memory(amount)
