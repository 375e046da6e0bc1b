"""Map a municipality's config onto the policy rules' context, and write its policy-pack config.

The policy rules know nothing about cgkit's config model; this module is the one adapter between
them. The engine passes the file `write_pack_config` writes as ``--policy-pack-config`` so the
CrossGuard pack judges a stack with its municipality's domain, registries and waivers.
"""

from __future__ import annotations

import json
from pathlib import Path

from cgkit.config.model import EnvironmentFile, MunicipalityConfig
from cgkit.errors import CgkitError
from cgkit.project import state_dir
from policies import config as policy_config
from policies.model import Context
from policies.registry import rule_ids
from policies.waivers import Waiver, WaiverError, validate


class InvalidWaiverError(CgkitError):
    """A municipality's waiver has expired or names no rule; the stack is not previewed with it."""

    reference = "invalid-waiver"


def context_of(cfg: MunicipalityConfig) -> Context:
    """The policy context of a municipality stack: code, domain, tenant namespace, registries."""
    return Context(gemeente_code=cfg.code, domain=cfg.domain, tenant_namespace=cfg.namespace,
                   allowed_registries=tuple(cfg.environment.images.allowed_registries))


def platform_context(environment: EnvironmentFile) -> Context:
    """The policy context of a platform stack: only the environment's registries are known."""
    return Context(allowed_registries=tuple(environment.images.allowed_registries))


def waivers_of(cfg: MunicipalityConfig) -> list[Waiver]:
    """The municipality's waivers as the policy engine's type (same four fields)."""
    return [Waiver(w.rule, w.reason, w.approved_by, w.expires) for w in cfg.waivers]


def write_pack_config(ctx: Context, waivers: list[Waiver], path: Path) -> Path:
    """Write the ``--policy-pack-config`` JSON for one stack to ``path`` (parents created); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(policy_config.pack_config(ctx, rule_ids(), waivers), indent=2), encoding="utf-8")
    return path


def write_stack_pack_config(root: Path, stack: str, cfg: MunicipalityConfig | None,
                            environment: EnvironmentFile) -> Path:
    """Write the pack config of one stack to ``<root>/.cgkit/policy/<stack>.json`` and return the path.

    ``cfg`` is the municipality's config, or None for the platform stack (which only knows the
    environment's registries). Raises InvalidWaiverError for an expired or unknown-rule waiver, so
    a stack is never previewed with an exception that no longer holds.
    """
    ctx = context_of(cfg) if cfg is not None else platform_context(environment)
    waiver_list = waivers_of(cfg) if cfg is not None else []
    try:
        validate(waiver_list, rule_ids())
    except WaiverError as e:
        raise InvalidWaiverError(str(e), hint=f"renew or remove it in the municipality file of {cfg.code}") from e
    return write_pack_config(ctx, waiver_list, state_dir(root) / "policy" / f"{stack}.json")
