"""Size tiers: quotas differ per size, and what the program declares always fits its quota."""

from __future__ import annotations

import pytest

from components._quantity import cpu_millis, memory_mib
from components.sizing import TIERS, quota_shortfalls, tier

from rendered import all_apps, render

SIZES = ["S", "M", "L", "XL"]


def _qty(kind: str, value: str) -> int:
    if kind == "cpu":
        return cpu_millis(value)
    if value.endswith("Ti"):
        return int(value[:-2]) * 1024 * 1024
    return memory_mib(value)


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
    """Every pod the tenant runs (replicas + the Deployment surge) fits the size's quota."""
    size, manifests = sized
    assert quota_shortfalls(list(manifests)) == [], size


def test_too_many_replicas_for_the_size_are_named():
    manifests = list(render(all_apps(size="S", apps={"openzaak": {"replicas": 20}})))
    shortfalls = quota_shortfalls(manifests)
    assert any(s.startswith("limits.cpu: the workloads need") and s.endswith("the quota allows 20")
               for s in shortfalls), shortfalls


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
