"""Map a municipality's config onto the policy rules' context, and write its policy-pack config.

The policy rules know nothing about cgkit's config model; this module is the one adapter between
them. The engine passes the file `write_pack_config` writes as ``--policy-pack-config`` so the
CrossGuard pack judges a stack with its municipality's domain, registries and waivers, at the
environment's enforcement. The waivers and the environment's ``policy:`` section are the pack's own
models already (`policies.waivers.Waiver`, `policies.config.PolicySettings`), so they pass as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from cgkit.config.model import EnvironmentFile, MunicipalityConfig
from policies import config as policy_config
from policies.config import PolicySettings
from policies.model import Context
from policies.registry import enforcement_levels
from policies.waivers import Waiver
from cgkit.writer import write_text


def context_of(cfg: MunicipalityConfig) -> Context:
    """The policy context of a municipality stack: code, domain, tenant namespace, registries."""
    return Context(gemeente_code=cfg.code, domain=cfg.domain, tenant_namespace=cfg.namespace,
                   allowed_registries=tuple(cfg.environment.images.allowed_registries))


def platform_context(environment: EnvironmentFile) -> Context:
    """The policy context of a platform stack: only the environment's registries are known."""
    return Context(allowed_registries=tuple(environment.images.allowed_registries))


def write_pack_config(ctx: Context, waivers: list[Waiver], path: Path, policy: PolicySettings | None = None,
                      root: Path | None = None) -> Path:
    """Write the ``--policy-pack-config`` JSON for one stack to ``path`` (parents created; through
    `cgkit.writer.write_text`, no link followed inside ``root``, default ``path``'s folder); return it.

    Every rule's section carries the level the engine enforces (`policies.config.pack_config`):
    advisory when waived or when ``policy`` (the environment's; default mandatory) is advisory,
    else the rule's own.
    """
    document = policy_config.pack_config(ctx, enforcement_levels(), waivers, policy)
    return write_text(root or path.parent, path, json.dumps(document, indent=2))
