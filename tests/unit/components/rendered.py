"""Helpers for the component and program tests: configs built with the real config model, and
the rendered manifests of the municipality program under Pulumi mocks (cgkit.render).

Rendering runs the whole program to completion in its own event loop and context and returns plain
data, so the tests' assertions run on resolved values: no apply callback can be skipped, and nothing
is unknown (the mocks run as an update, not a preview).
"""

from __future__ import annotations

from typing import Any

from cgkit.config.model import EnvironmentFile, MunicipalityFile
from cgkit.config.loader import merge
from cgkit.render import render_municipality, render_resources, run_municipality
from components.catalog import load_catalog

ALL_APPS = list(load_catalog())

ENVIRONMENT: dict[str, Any] = {
    "name": "test",
    "ingress": {"class_name": "cgkit-test", "controller": "k8s.io/ingress-nginx", "controller_namespace": "ingress-system", "tls_issuer": "test-ca"},
    "storage_class": "rwx-test",
    "images": {"allowed_registries": ["docker.io"]},
    "defaults": {"size": "S", "apps": ["openzaak", "opennotificaties"], "database": {"mode": "in-cluster"}},
}


def make_cfg(environment: dict[str, Any] | None = None, **municipality: Any):
    """A merged MunicipalityConfig for GM0344 over the test environment, with overrides."""
    env = EnvironmentFile.model_validate({**ENVIRONMENT, **(environment or {})})
    muni = MunicipalityFile.model_validate({"code": "GM0344", "domain": "utrecht.test.cgkit.nl", **municipality})
    return merge("test", env, muni)


def all_apps(**municipality: Any):
    """Every catalog app on (``apps`` entries given here override)."""
    apps = {key: {} for key in ALL_APPS}
    apps.update(municipality.pop("apps", {}))
    return make_cfg(apps=apps, **municipality)


class Manifests(list):
    """The rendered objects of one tenant, with lookups that fail loudly."""

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self if m["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.kind(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}: " \
                                f"{sorted(m['metadata']['name'] for m in self.kind(kind))}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {m["metadata"]["name"] for m in self.kind(kind)}

    def workloads(self) -> list[dict[str, Any]]:
        return [m for m in self if m["kind"] in ("Deployment", "StatefulSet", "Job")]


def covered(secret_paths, paths) -> bool:
    """Every path lies at or under a secret path (the engine may mark the whole map secret)."""
    return bool(secret_paths) and all(
        any(p == s or p.startswith(s + ".") for s in secret_paths) for p in paths)


def render(cfg) -> Manifests:
    manifests = Manifests(render_municipality(cfg))
    assert manifests, "the program declared nothing"
    return manifests


__all__ = ["ALL_APPS", "ENVIRONMENT", "Manifests", "all_apps", "covered", "make_cfg", "render", "render_resources",
           "run_municipality"]
