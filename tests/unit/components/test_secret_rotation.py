"""A rotated secret reaches every consumer, under mocks: the app's pods roll (a digest annotation),
a new provisioning Job sets a changed database password, and no value shows in a name, label or
annotation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cgkit import secrets
from cgkit.render import run_municipality
from components._defaults import secret_digest
from rendered import Manifests, make_cfg

DIGEST = "cgkit.io/secret-digest"
NEW = "rotated-value-0123456789abcdefghijklmnopqrstuvwxyz"


def rendered(values: dict[str, str] | None = None) -> Manifests:
    return Manifests(r.manifest for r in run_municipality(make_cfg(), values).resources)


def pod_digests(manifests: Manifests) -> dict[str, str]:
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][DIGEST]
            for d in manifests.kind("Deployment")}


def visible_text(manifests: Manifests) -> str:
    """Every name, label and annotation of every object, and of every pod template."""
    parts: list[Any] = []
    for m in manifests:
        for meta in (m["metadata"], m.get("spec", {}).get("template", {}).get("metadata", {})):
            parts += [meta.get("name"), meta.get("labels"), meta.get("annotations")]
    return json.dumps(parts)


@pytest.fixture(scope="module")
def before() -> Manifests:
    return rendered()


def test_a_db_password_rotation_rolls_the_apps_pods_and_reruns_provisioning(before: Manifests) -> None:
    after = rendered({secrets.db_password_name("openzaak"): NEW})
    changed = {name for name, digest in pod_digests(after).items() if pod_digests(before)[name] != digest}
    assert changed == {"openzaak", "openzaak-worker", "openzaak-beat"}
    (old_job,), (new_job,) = (
        [j for j in m.kind("Job") if j["metadata"]["name"].startswith("postgresql-provision")] for m in (before, after))
    assert old_job["metadata"]["name"] != new_job["metadata"]["name"]
    assert after.get("Secret", "openzaak")["stringData"]["DB_PASSWORD"] == NEW
    assert after.get("Secret", "postgresql")["stringData"]["OPENZAAK_DB_PASSWORD"] == NEW


def test_a_secret_key_rotation_rolls_only_that_apps_pods(before: Manifests) -> None:
    after = rendered({secrets.secret_key_name("opennotificaties"): NEW})
    changed = {name for name, digest in pod_digests(after).items() if pod_digests(before)[name] != digest}
    assert changed == {"opennotificaties", "opennotificaties-worker", "opennotificaties-beat"}
    assert before.kind("Job")[0]["metadata"]["name"] == after.kind("Job")[0]["metadata"]["name"]


def test_the_same_secrets_give_the_same_digests(before: Manifests) -> None:
    again = rendered()
    assert pod_digests(again) == pod_digests(before)
    assert again.kind("Job")[0]["metadata"]["name"] == before.kind("Job")[0]["metadata"]["name"]


def test_no_secret_value_in_any_name_label_or_annotation() -> None:
    values = {name: f"{NEW}-{name}" for name in secrets.secret_names(make_cfg())}
    text = visible_text(rendered(values))
    assert DIGEST in text
    leaked = [name for name, value in values.items() if value in text or value[:12] in text]
    assert leaked == []


def test_the_digest_is_a_short_hash_not_the_value() -> None:
    digest = secret_digest(["a-secret", "another"])
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest != secret_digest(["a-secret", "changed"]) and digest != secret_digest(["a-secretanother"])


def test_the_digest_is_plain_data_so_a_preview_shows_the_roll() -> None:
    resources = run_municipality(make_cfg()).resources
    hidden = {(r.manifest["kind"], r.manifest["metadata"]["name"]): r.secret_paths for r in resources
              if r.manifest["kind"] in ("Deployment", "Job")}
    assert hidden and all(paths == () for paths in hidden.values()), hidden
