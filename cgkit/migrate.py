"""Move every stack of an environment from its state backend to another (``cgkit state migrate``).

For each stack ``<env>.*`` of the source backend, in name order: export its checkpoint (``pulumi
stack export``: secrets stay ciphertext, encrypted by the stack's own secrets provider, whose
settings are in the stack's config file ``Pulumi.<stack>.yaml`` and so do not move), create the
stack in the target with the same secrets provider, import the checkpoint, export it back from the
target and compare: the resources, their order and every field, and the secrets providers, must
be equal, or the migration stops there with the source untouched. The source is never written: a
stack is only read from it, so a failed or interrupted migration loses nothing and can be run
again (a stack already in the target with an equal checkpoint counts as moved; one with a
different checkpoint is an error, never overwritten). Pulumi's update history is not carried
(export/import moves the checkpoint only), and the environment file is not edited: the summary
says which line to change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from pulumi import automation as auto

from cgkit import engine, state
from cgkit.interrupted import pending_operations
from cgkit.errors import CgkitError


class MigrationError(CgkitError):
    """A stack could not be moved, or its checkpoint in the target differs from the source."""

    reference = "state-migrate"


@dataclass(frozen=True)
class Moved:
    """One stack's outcome: ``name``, ``resources`` (count in its checkpoint), ``already`` (it was
    in the target already, with an equal checkpoint)."""

    name: str
    resources: int
    already: bool = False


def migrate(settings: engine.EngineSettings, env: str, target_url: str,
            say: Callable[[str], object] = lambda _line: None) -> list[Moved]:
    """Copy every stack ``<env>.*`` of ``settings``'s backend to ``target_url``; return what moved.

    Raises:
        ValueError: ``target_url`` is no backend the engine can open (``cgkit.state.check_backend``).
        MigrationError: the target is the source; the source holds no stack of ``env`` (nothing to
            move is no success: a wrong backend or environment would otherwise be "migrated" and the
            team told to switch to an empty target); a stack holds pending operations (nothing moved);
            a stack differs in the target, or a checkpoint read back from the target is not the one
            written (the stacks before it are moved).
        EngineError: the engine could not list, export, create or import a stack.
    """
    state.check_backend(target_url)
    source_url = engine.backend_of(settings)
    target_url = state.backend_url(target_url, settings.root)
    if target_url == source_url:
        raise MigrationError(f"{target_url} is already the backend of {env}: nothing to move")
    source = engine.workspace(settings)
    target = engine.workspace(replace(settings, backend_url=target_url))
    target.env_vars["PULUMI_BACKEND_URL"] = target_url  # over PULUMI_BACKEND_URL, which names the source
    names = sorted(s.name for s in _call(source.list_stacks, "list the stacks of", source_url) if
                   s.name.startswith(f"{env}."))
    if not names:
        raise MigrationError(f"{source_url} holds no stack of {env}: nothing to move, and the environment file "
                             "must not be pointed at the target",
                             hint="check the source: state.backend of the environment file, or PULUMI_BACKEND_URL, "
                                  "which wins over it")
    present = {s.name for s in _call(target.list_stacks, "list the stacks of", target_url)}
    checkpoints = {name: _call(lambda: source.export_stack(name), f"export {name} from", source_url) for name in names}
    left = {name: ops for name, checkpoint in checkpoints.items() if (ops := pending_operations(checkpoint))}
    if left:  # the engine's import drops them: refused before any stack moves
        raise MigrationError(
            f"{len(left)} stack(s) hold operations an interrupted engine left, which a move would drop: "
            + "; ".join(f"{name}: {engine.named(ops)}" for name, ops in left.items())
            + "; nothing was moved",
            hint="check those objects in the cluster, then clear them: pulumi refresh --clear-pending-creates -s "
                 f"<stack> (after eval \"$(cgkit env --env {env})\"), and migrate again")
    moved = []
    for name, checkpoint in checkpoints.items():
        if name in present:
            already = _call(lambda: target.export_stack(name), f"export {name} from", target_url)
            if _comparable(already) != _comparable(checkpoint):
                raise MigrationError(f"{name} exists in {target_url} with another checkpoint; nothing of it was "
                                     "overwritten", hint="remove it there (pulumi stack rm) or migrate to "
                                                         "another backend")
            moved.append(Moved(name, _count(checkpoint), already=True))
            say(f"{name}: already in the target, checkpoint equal ({_count(checkpoint)} resources)")
            continue
        _call(lambda: target.create_stack(name), f"create {name} in", target_url)
        _call(lambda: target.import_stack(name, checkpoint), f"import {name} into", target_url)
        written = _call(lambda: target.export_stack(name), f"export {name} from", target_url)
        if _comparable(written) != _comparable(checkpoint):
            raise MigrationError(f"{name}: the checkpoint read back from {target_url} differs from the one written; "
                                 f"the source is untouched", hint=f"remove {name} from the target and run again")
        moved.append(Moved(name, _count(checkpoint)))
        say(f"{name}: moved, checkpoint verified ({_count(checkpoint)} resources)")
    return moved


def _comparable(deployment: auto.Deployment) -> str:
    """The parts of a checkpoint that must survive a move: resources (in order, every field),
    pending operations and the secrets providers; not the manifest (its time is the import's)."""
    body = dict(deployment.deployment or {})
    body.pop("manifest", None)
    return json.dumps(body, sort_keys=True)


def _count(deployment: auto.Deployment) -> int:
    return len((deployment.deployment or {}).get("resources") or [])


def _call(action: Callable[[], object], what: str, url: str):
    """Run one engine call; turn its failure into an EngineError naming the action and backend."""
    try:
        return action()
    except auto.CommandError as failed:
        raise engine.engine_error(f"could not {what} {url}", failed) from failed
