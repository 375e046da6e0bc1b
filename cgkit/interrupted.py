"""What an engine killed in the middle of an update leaves in its stack's checkpoint besides its lock:
pending operations, and dropping them once the engine is provably gone.

Before each step the engine records the operation it starts (``pending_operations`` in the
checkpoint: ``creating``, ``updating``, ``deleting``) and removes it when the step ends. A killed
engine (SIGKILL: an evicted runner pod, an OOM kill) leaves them. The engine keeps ``creating``
entries across every later ``up`` and ``destroy`` (only ``pulumi refresh --clear-pending-creates``
or an interactive refresh resolves them), and an export/import drops them silently, so
`cgkit state migrate` refuses such a stack. Found on the real node: a runner SIGKILLed while it
created a tenant left ``creating ResourceQuota`` in the stack through the converging ``up`` and the
``destroy`` after it.

Dropping them is Pulumi's documented repair for an interrupted update (export the checkpoint, remove
the pending operations, import it): an object the killed engine created without recording it is
taken over by the next ``up`` (cgkit's ``up`` reads every object back first, and the Kubernetes
provider's server-side apply adopts an existing object), and an object it was deleting or updating
is still in the checkpoint, where that refresh finds what became of it.
"""

from __future__ import annotations

from pulumi import automation as auto

from cgkit import engine, locks


def pending_operations(deployment: auto.Deployment) -> list[str]:
    """The operations an interrupted engine left in a checkpoint, as ``<type> <name>`` (e.g.
    ``creating kubernetes:rbac.authorization.k8s.io/v1:Role gm0200-role-admin``); [] when none."""
    return [f"{op.get('type', '?')} {op.get('resource', {}).get('type', '?')} "
            f"{str(op.get('resource', {}).get('urn', '?')).rsplit('::', 1)[-1]}"
            for op in (deployment.deployment or {}).get("pending_operations") or []]


def without_pending_operations(deployment: auto.Deployment) -> auto.Deployment:
    """``deployment`` with no pending operations; every other field as it was."""
    body = {key: value for key, value in (deployment.deployment or {}).items() if key != "pending_operations"}
    return auto.Deployment(version=deployment.version, deployment=body)


def drop_pending_operations(settings: engine.EngineSettings, stack_name: str) -> list[str]:
    """Remove the pending operations from ``stack_name``'s checkpoint; return them (`pending_operations`).

    Only for a stack whose engine is provably gone (its lock was just removed by `cgkit.locks`): a
    running engine's pending operations are its work in progress. Nothing is written when there are none
    or the stack does not exist.

    Raises:
        EngineError: the checkpoint could not be exported or imported (the backend failed, or a shared
            backend's passphrase is not given).
    """
    workspace = engine.workspace(settings)
    try:
        checkpoint = workspace.export_stack(stack_name)
        dropped = pending_operations(checkpoint)
        if dropped:
            workspace.import_stack(stack_name, without_pending_operations(checkpoint))
    except auto.StackNotFoundError:  # a lock can outlive, or predate, its stack
        return []
    except auto.CommandError as failed:
        raise engine.engine_error(f"could not drop the pending operations of {stack_name}", failed) from failed
    return dropped


def release(settings: engine.EngineSettings, backend: str, lock: locks.Lock) -> list[str]:
    """Remove ``lock`` of ``backend``, whose holder is provably gone (`locks.holder_gone`), and the
    pending operations its engine left in the stack; return those (`pending_operations`).

    Raises:
        LockError: the lock could not be removed (nothing else changed).
        EngineError: as `drop_pending_operations` (the lock is removed by then).
    """
    locks.remove(backend, lock)
    return drop_pending_operations(settings, lock.stack)
