"""Size tiers: quotas differ per size, and what the program declares always fits its quota."""

from __future__ import annotations

import math

import pytest

from components._quantity import cpu_millis, memory_mib
from components.sizing import TIERS, tier

from rendered import all_apps, render

SIZES = ["S", "M", "L", "XL"]


def _qty(kind: str, value: str) -> int:
    if kind == "cpu":
        return cpu_millis(value)
    if value.endswith("Ti"):
        return int(value[:-2]) * 1024 * 1024
    return memory_mib(value)


def _surge(replicas: int) -> int:
    """Pods a RollingUpdate with the default maxSurge 25% adds on top of ``replicas``."""
    return math.ceil(replicas * 0.25)


def test_unknown_size_names_the_choices():
    with pytest.raises(ValueError, match="S, M, L, XL"):
        tier("XXL")


def test_tiers_grow_monotonically():
    for smaller, larger in zip(SIZES, SIZES[1:]):
        a, b = TIERS[smaller], TIERS[larger]
        assert b.multiplier > a.multiplier
        assert b.web_replicas >= a.web_replicas
        assert cpu_millis(b.quota.requests_cpu) > cpu_millis(a.quota.requests_cpu)
        assert memory_mib(b.quota.requests_memory) > memory_mib(a.quota.requests_memory)


@pytest.fixture(scope="module", params=SIZES)
def sized(request):
    return request.param, render(all_apps(size=request.param))


def test_quota_is_the_tiers(sized):
    size, manifests = sized
    hard = manifests.get("ResourceQuota", "tenant-quota")["spec"]["hard"]
    assert hard == TIERS[size].quota.hard()
    assert hard["services.loadbalancers"] == "0" and hard["services.nodeports"] == "0"


def test_quotas_differ_between_sizes():
    quotas = {size: render(all_apps(size=size)).get("ResourceQuota", "tenant-quota")["spec"]["hard"]
              for size in ("S", "XL")}
    assert quotas["S"]["requests.cpu"] != quotas["XL"]["requests.cpu"]
    assert quotas["S"]["limits.memory"] != quotas["XL"]["limits.memory"]


def test_all_apps_fit_the_quota_including_a_rolling_update(sized):
    """Sum requests/limits of every pod the tenant runs (replicas + one surge per Deployment)."""
    size, manifests = sized
    hard = TIERS[size].quota.hard()
    totals = {"requests.cpu": 0, "requests.memory": 0, "limits.cpu": 0, "limits.memory": 0}
    pods = 0
    for w in manifests.workloads():
        spec = w["spec"]
        replicas = spec.get("replicas", 1) if w["kind"] != "Job" else 1
        strategy = spec.get("strategy", {}).get("type", "RollingUpdate")
        count = replicas + (_surge(replicas) if w["kind"] == "Deployment" and strategy == "RollingUpdate" else 0)
        pods += count
        for c in spec["template"]["spec"]["containers"]:
            for section in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    totals[f"{section}.{res}"] += count * _qty(res, c["resources"][section][res])
    for key, used in totals.items():
        res = key.split(".")[1]
        assert used <= _qty(res, hard[key]), f"size {size}: {key} needs {used}, quota {hard[key]}"
    assert pods <= int(hard["pods"]), f"size {size}: {pods} pods, quota {hard['pods']}"


def test_storage_fits_the_quota(sized):
    size, manifests = sized
    hard = TIERS[size].quota.hard()
    claims = [m["spec"]["resources"]["requests"]["storage"] for m in manifests.kind("PersistentVolumeClaim")]
    for sts in manifests.kind("StatefulSet"):
        claims += [t["spec"]["resources"]["requests"]["storage"] for t in sts["spec"]["volumeClaimTemplates"]]
    assert len(claims) <= int(hard["persistentvolumeclaims"])
    assert sum(_qty("memory", c) for c in claims) <= _qty("memory", hard["requests.storage"])


def test_every_container_is_within_the_limit_range_maximum(sized):
    size, manifests = sized
    lr = manifests.get("LimitRange", "tenant-limits")["spec"]["limits"][0]
    assert lr["type"] == "Container" and lr["default"] and lr["defaultRequest"]
    for w in manifests.workloads():
        for c in w["spec"]["template"]["spec"]["containers"]:
            assert cpu_millis(c["resources"]["limits"]["cpu"]) <= cpu_millis(lr["max"]["cpu"]), w["metadata"]["name"]
            assert memory_mib(c["resources"]["limits"]["memory"]) <= memory_mib(lr["max"]["memory"])


def test_web_replicas_and_resources_scale_with_size():
    small, large = render(all_apps(size="S")), render(all_apps(size="XL"))
    s_web, l_web = small.get("Deployment", "openzaak"), large.get("Deployment", "openzaak")
    assert (s_web["spec"]["replicas"], l_web["spec"]["replicas"]) == (1, 3)
    s_req = s_web["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    l_req = l_web["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert (s_req["cpu"], l_req["cpu"]) == ("250m", "750m")
    assert (s_req["memory"], l_req["memory"]) == ("512Mi", "1536Mi")
    # beat is a singleton scheduler at any size
    assert large.get("Deployment", "openzaak-beat")["spec"]["replicas"] == 1
