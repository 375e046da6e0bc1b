"""The kit's own output passes its policy pack: no mandatory finding for any tenant shape.

Seven tenant shapes; tests/unit/test_all_municipalities.py covers all 342 with their defaults.
"""

from __future__ import annotations

import pytest

from rendered import ALL_APPS, all_apps, make_cfg, render

from policies import evaluate, model  # noqa: E402

CONFIGS = {
    "all apps, M": lambda: all_apps(size="M", access={"admins": ["a"], "viewers": ["v"]}),
    "defaults": lambda: make_cfg(),
    "external database": lambda: all_apps(database={"mode": "external", "host": "10.1.2.3"}),
    "XL, one app off": lambda: all_apps(size="XL", apps={ALL_APPS[0]: {"enabled": False}}),
    "telemetry to a collector": lambda: all_apps(environment={"observability": {
        "otlp_endpoint": "http://otel-collector.observability.svc:4318"}}),
    "telemetry to an address": lambda: make_cfg(environment={"observability": {
        "otlp_endpoint": "https://10.8.0.7:4317", "protocol": "grpc"}}),
    "backed up, M": lambda: all_apps(size="M", environment={"backups": {
        "endpoint": "http://s3.backup-store.svc:9000", "bucket": "cgkit-backups"}}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_no_mandatory_findings(name):
    cfg = CONFIGS[name]()
    ctx = model.Context(gemeente_code=cfg.code, domain=cfg.domain,
                        allowed_registries=tuple(cfg.environment.images.allowed_registries))
    findings = evaluate.evaluate(render(cfg), ctx)
    blocking = [f for f in findings if f.enforcement.value == "mandatory"]
    assert not blocking, "\n".join(f"{f.rule_id} {f.subject.kind}/{f.subject.name} {f.path}: {f.message}"
                                   for f in blocking)
