"""Drive Pulumi stacks through the Automation API with the local program in stacks/.

The engine is the real Pulumi CLI from the offline toolchain (tools/), with the environment's state
backend and secrets provider (its ``state:`` section, `cgkit.state`; by default a local file backend
under ``<root>/.cgkit/state`` and a passphrase). Nothing here decides what
is deployed; it only selects the stack, makes sure its generated secrets exist (encrypted in the
stack's config file), and runs preview / up / refresh / destroy, streaming the engine's output.

Environment the engine runs with (research/toolchain.md, "Running the engine offline"):
``PATH`` (toolchain bin first), ``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE_FILE``,
``PULUMI_SKIP_UPDATE_CHECK``, ``PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION``, ``PULUMI_HOME`` and,
for a sandbox environment, ``KUBECONFIG`` of the local sandbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets as token_source
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from cgkit import state, toolchain
from cgkit.errors import (CgkitError, DataAtRiskError, EngineError, EngineInterruptedError, PolicyViolationError,
                          StackLockedError)
from cgkit.project import state_dir
from cgkit.writer import WriteError, check_target

CONFIG_NAMESPACE = "cgkit"  #: stack config keys are ``cgkit:<secret-name>``
SECRET_BYTES = 32  #: entropy of each generated secret (256 bits, URL-safe text)


@dataclass(frozen=True)
class EngineSettings:
    """Where the engine keeps state and how it reaches the cluster.

    Attributes:
        root: project root (holds Pulumi.yaml).
        kubeconfig: the kubeconfig for the environment's cluster, or None for the ambient one.
        policy_packs: policy pack folders applied to preview and up (CrossGuard).
        policy_pack_configs: JSON config files, one per pack, same order (may be empty).
        backend_url: the environment's state backend (``cgkit.state.backend_url``); None = the
            project's file backend ``<root>/.cgkit/state``. ``PULUMI_BACKEND_URL`` wins over both.
        secrets_provider: what encrypts the secrets of a stack this creates (``passphrase`` or a
            KMS URL, ``cgkit.state``); existing stacks keep their own.
    """

    root: Path
    kubeconfig: Path | None = None
    policy_packs: list[Path] = field(default_factory=list)
    policy_pack_configs: list[Path] = field(default_factory=list)
    backend_url: str | None = None
    secrets_provider: str = state.DEFAULT_SECRETS_PROVIDER


def passphrase_file(root: Path) -> Path:
    """Return the secrets passphrase file, generating it once (mode 0600) when it does not exist.

    ``PULUMI_CONFIG_PASSPHRASE`` or ``PULUMI_CONFIG_PASSPHRASE_FILE`` in the environment win over it.
    """
    path = state_dir(root) / "passphrase"
    if not path.exists() and any((state_dir(root) / "state").glob(".pulumi/stacks/**/*.json")):
        raise EngineError(f"{path} is missing but stacks exist; a new passphrase could not decrypt their secrets",
                          hint="restore the file, or set PULUMI_CONFIG_PASSPHRASE to the passphrase they were made with")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token_source.token_urlsafe(SECRET_BYTES))
    return path


def backend_of(settings: EngineSettings) -> str:
    """The state backend URL the engine will use: ``PULUMI_BACKEND_URL`` when set (as for plain
    pulumi), else the environment's (``settings.backend_url``), else the project's file backend."""
    return os.environ.get("PULUMI_BACKEND_URL") or state.backend_url(settings.backend_url, settings.root)


def engine_env(settings: EngineSettings) -> dict[str, str]:
    """Return the environment variables every engine command runs with (see module doc).

    Raises:
        EngineError: a passphrase is needed for a shared backend and none is given (cgkit generates
            ``.cgkit/passphrase`` only for a file backend: a passphrase of one machine would lock
            everybody else out of the stacks it encrypts).
    """
    dirs = state_dir(settings.root)
    backend = backend_of(settings)
    if (local := state.local_path(backend)) is not None:
        local.mkdir(parents=True, exist_ok=True)
    home = Path(os.environ.get("PULUMI_HOME", dirs / "pulumi-home"))
    env = {
        **toolchain.engine_env(pulumi_home=home),  # PATH (toolchain, then this Python's bin), no downloads
        "PULUMI_BACKEND_URL": backend,
    }
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
        env["PULUMI_CONFIG_PASSPHRASE"] = os.environ["PULUMI_CONFIG_PASSPHRASE"]
    elif os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE"):
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"]
    elif local is not None:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file(settings.root))
    elif settings.secrets_provider == state.DEFAULT_SECRETS_PROVIDER:
        mine = dirs / "passphrase"
        raise EngineError(f"the state backend {backend} is shared, and its stacks' passphrase is not given",
                          hint="set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE) to the team's "
                               "passphrase" + (f" (stacks made here on the file backend use {mine})"
                                               if mine.exists() else "")
                               + ", or set state.secrets_provider to a KMS key in the environment file")
    if settings.kubeconfig:
        env["KUBECONFIG"] = str(settings.kubeconfig)
    return env


class _Workspace(auto.LocalWorkspace):
    """A LocalWorkspace that never changes which stack plain ``pulumi`` has selected.

    The SDK's ``select_stack`` runs ``pulumi stack select`` and ``create_stack`` runs ``pulumi stack
    init`` (which selects too); both rewrite the workspace file under ``PULUMI_HOME`` that a user's
    later bare ``pulumi up``/``destroy`` reads (``cgkit env`` exports the same ``PULUMI_HOME``).
    Every operation cgkit runs names its stack (``--stack``), so selecting is never needed: here
    ``select_stack`` only checks that the stack exists (``pulumi stack --show-name --stack S``,
    which fails with "no stack named" otherwise) and ``create_stack`` adds ``--no-select``.
    """

    def select_stack(self, stack_name: str) -> None:
        """Check that ``stack_name`` exists (raises auto.StackNotFoundError when not); select nothing."""
        self._run_pulumi_cmd_sync(["stack", "--show-name", "--stack", stack_name])

    def create_stack(self, stack_name: str) -> None:
        """Create ``stack_name`` (``pulumi stack init --no-select``) with this workspace's secrets provider."""
        args = ["stack", "init", stack_name, "--no-select"]
        if self.secrets_provider:
            args += ["--secrets-provider", self.secrets_provider]
        self._run_pulumi_cmd_sync(args)


def select_stack(settings: EngineSettings, stack_name: str) -> auto.Stack:
    """Return the stack ``stack_name`` of the project at ``settings.root``, creating it when absent.

    Pulumi's selected stack is left as it was (``_Workspace``). Callers that may race other
    processes creating the same stack hold ``stack_lock`` around this and ``ensure_secrets``.
    The CLI process's own PATH gets the toolchain bin dir first, so the Automation API finds the
    toolchain's ``pulumi``.

    Raises:
        EngineError: the Pulumi CLI is missing or refused the stack.
    """
    return _stack(settings, stack_name, auto.Stack.create_or_select)


def existing_stack(settings: EngineSettings, stack_name: str) -> auto.Stack | None:
    """Return the stack ``stack_name`` when it exists, else None; never creates one.

    Raises:
        EngineError: the Pulumi CLI is missing or failed otherwise.
    """
    try:
        return _stack(settings, stack_name, auto.Stack.select)
    except EngineError as failed:
        if isinstance(failed.__cause__, auto.StackNotFoundError):
            return None
        raise


def stack_config_file(root: Path, stack_name: str) -> Path:
    """The stack's config file beside Pulumi.yaml, ``Pulumi.<stack>.yaml``, which the engine writes
    (the stack's encrypted secrets and salt): checked by `cgkit.writer.check_target` before every
    engine call on the stack, since the engine itself would write through a link.

    Raises:
        WriteError: it is a symbolic link or not a regular file.
    """
    path = root / f"Pulumi.{stack_name}.yaml"
    check_target(root, path)
    return path


def _stack(settings: EngineSettings, stack_name: str,
           how: Callable[[str, auto.Workspace], auto.Stack]) -> auto.Stack:
    stack_config_file(settings.root, stack_name)  # before the engine opens, and may write, it
    try:
        return how(stack_name, workspace(settings))
    except FileNotFoundError as missing:
        raise toolchain_missing() from missing
    except auto.CommandError as failed:
        raise engine_error(f"could not select stack {stack_name}", failed) from failed


@contextlib.contextmanager
def stack_lock(root: Path, stack_name: str) -> Iterator[None]:
    """Hold the project's lock on ``stack_name`` (``.cgkit/locks/<stack>.lock``, ``flock``) while the
    block runs; wait while another process or thread holds it.

    For creating a stack and generating its secrets: without it, two commands opening a new stack at
    once both create it (one fails) and both generate its secrets (the second overwrites the first,
    encrypted with a salt that may no longer match). The lock is advisory and local: it orders
    cgkit processes sharing this checkout's ``.cgkit``, not users of a shared backend elsewhere.
    """
    locks = state_dir(root) / "locks"
    locks.mkdir(exist_ok=True)
    path = locks / f"{stack_name}.lock"
    try:  # O_NOFOLLOW: a link planted here would make the open create or append to what it leads to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise WriteError(f"cannot open the lock {path}: {err.strerror or err}",
                         hint="remove it if it is a symbolic link or no regular file") from None
    with os.fdopen(fd, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def workspace(settings: EngineSettings) -> auto.LocalWorkspace:
    """Return the project's workspace; it never selects a stack (``_Workspace``)."""
    env = engine_env(settings)
    os.environ["PATH"] = env["PATH"]
    return _Workspace(work_dir=str(settings.root), env_vars=env, pulumi_home=env["PULUMI_HOME"],
                      secrets_provider=settings.secrets_provider)


def stacks_with_resources(settings: EngineSettings, prefix: str) -> list[str]:
    """Return the names of the project's stacks starting with ``prefix`` that manage resources."""
    try:
        summaries = workspace(settings).list_stacks()
    except auto.CommandError as failed:
        raise EngineError(f"could not list stacks: {_why(str(failed))}") from failed
    return sorted(s.name for s in summaries if s.name.startswith(prefix) and (s.resource_count or 0) > 0)


def forget_stacks(settings: EngineSettings, prefix: str) -> list[str]:
    """Remove the state of every stack starting with ``prefix``, keeping their config (secrets).

    For a cluster that no longer exists (the sandbox after ``down``): its stacks' state describes
    objects that are gone, and a later ``up`` must create them again. Returns the names removed.
    """
    ws = workspace(settings)
    names = [s.name for s in ws.list_stacks() if s.name.startswith(prefix)]
    for name in names:
        ws.remove_stack(name, force=True, preserve_config=True)
    return names


def remove_stack(settings: EngineSettings, stack_name: str) -> None:
    """Remove a stack that manages no resources any more: its state, history and config (secrets).

    Raises:
        EngineError: the engine refused (it still manages resources, or the backend failed).
    """
    try:
        workspace(settings).remove_stack(stack_name)
    except auto.CommandError as failed:
        raise EngineError(f"could not remove stack {stack_name}: {_why(str(failed))}") from failed


def toolchain_missing() -> CgkitError:
    """Return the error for a missing Pulumi CLI, pointing at the build script."""
    return EngineError("the Pulumi CLI is not built", hint="run tools/build-toolchain, then cgkit doctor")


def ensure_secrets(stack: auto.Stack, names: Iterable[str]) -> list[str]:
    """Generate every missing secret of ``names`` into the stack's config, encrypted; return the new names.

    Existing values are never changed, so secrets stay stable across runs. Values are ``new_secret()``
    and are never printed.

    Raises:
        EngineError: the Pulumi CLI could not read or write the stack's config.
    """
    try:
        present = stack.get_all_config()
    except auto.CommandError as failed:
        raise engine_error(f"could not read the config of stack {stack.name}", failed) from failed
    return replace_secrets(stack, [name for name in names if f"{CONFIG_NAMESPACE}:{name}" not in present])


def replace_secrets(stack: auto.Stack, names: Iterable[str]) -> list[str]:
    """Write a fresh ``new_secret()`` for each of ``names`` into the stack's config (encrypted, one
    config write); return the names written. For rotation, and for secrets that are missing.

    Raises:
        EngineError: the Pulumi CLI could not write the stack's config.
    """
    fresh = {f"{CONFIG_NAMESPACE}:{name}": auto.ConfigValue(new_secret(), secret=True) for name in names}
    if fresh:
        try:
            stack.set_all_config(fresh)
        except auto.CommandError as failed:
            raise engine_error(f"could not write the secrets of stack {stack.name}", failed) from failed
    return [key.split(":", 1)[1] for key in fresh]


def new_secret() -> str:
    """Return a new random secret: URL-safe text of SECRET_BYTES random bytes (never printed)."""
    return token_source.token_urlsafe(SECRET_BYTES)


def missing_config(stack: auto.Stack, names: Iterable[str]) -> list[str]:
    """The names of ``names`` that have no ``cgkit:<name>`` value in the stack's config, in order.

    Raises:
        EngineError: the config could not be read.
    """
    names = list(names)
    if not names:
        return []
    try:
        present = stack.get_all_config()
    except auto.CommandError as failed:
        raise engine_error(f"could not read the config of stack {stack.name}", failed) from failed
    return [name for name in names if f"{CONFIG_NAMESPACE}:{name}" not in present]


@dataclass
class Operation:
    """One engine operation's options.

    Attributes:
        on_output: receives each line the engine prints (already free of secret values; Python
            tracebacks of plugins stopped by a cancel are left out, see ``QuietTracebacks``).
        policies: apply the settings' policy packs (preview and up only).
        expect_no_changes: fail when the operation would change anything.
        refresh: preview and up first read every object of the stack back from the cluster
            (``pulumi up --refresh``), so an object changed or deleted by hand is put back (fields
            another manager took are taken back once the stack is deployed: ``_take_over_drift``).
    """

    on_output: Callable[[str], object] = print
    policies: bool = True
    expect_no_changes: bool = False
    refresh: bool = False


#: The keys of ``Drift.counts``: objects found changed, objects found gone.
DRIFT_KEYS = ("refresh-drifted", "refresh-gone")


@dataclass(frozen=True)
class Drift:
    """What the refresh before a preview or update found, as ``Kind namespace/name`` texts.

    Attributes:
        drifted: objects whose live state differed from the stack's state (changed by hand or by
            another field manager); the update sets them back.
        gone: objects of the stack's state missing from the cluster; the update creates them again.
    """

    drifted: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Return ``{"refresh-drifted": n, "refresh-gone": m}`` (DRIFT_KEYS), leaving out zero counts;
        a fleet run adds these to a stack's change counts."""
        return {key: len(items) for key, items in zip(DRIFT_KEYS, (self.drifted, self.gone)) if items}

    def text(self, limit: int = 5) -> str:
        """Return ``refresh found 1 gone (NetworkPolicy gm0344/default-deny)`` or ``refresh found no drift``;
        at most ``limit`` objects are named per kind of finding."""
        parts = [f"{len(items)} {word} ({named(items, limit)})"
                 for word, items in (("drifted", self.drifted), ("gone", self.gone)) if items]
        return "refresh found " + (", ".join(parts) if parts else "no drift")


@dataclass(frozen=True)
class Outcome:
    """The result of a preview or an update.

    Attributes:
        changes: op -> count of the update (for a preview: of what it would do), refresh not counted.
        drift: what the refresh before it found (empty without ``Operation.refresh``).
        outputs: the stack's outputs after an update (empty for a preview).
    """

    changes: dict[str, int]
    drift: Drift = Drift()
    outputs: dict[str, auto.OutputValue] = field(default_factory=dict)


def preview(stack: auto.Stack, settings: EngineSettings, op: Operation) -> Outcome:
    """Run ``pulumi preview`` on ``stack`` (with ``--refresh`` when ``op.refresh``; the refresh of a
    preview writes nothing); return what it would change and the drift it found.

    Raises:
        EngineError: the engine failed, or a mandatory policy was violated.
    """
    result, drift = _converging(stack, settings, op, "preview", lambda **args: stack.preview(diff=False, **args))
    return Outcome(dict(result.change_summary or {}), drift)


def up(stack: auto.Stack, settings: EngineSettings, op: Operation) -> Outcome:
    """Run ``pulumi up`` on ``stack`` (secrets hidden in the output; ``--refresh`` when ``op.refresh``);
    return its changes, the drift its refresh found and the stack's outputs.

    Raises:
        EngineError: the engine failed, or a mandatory policy was violated.
    """
    result, drift = _converging(stack, settings, op, "up", lambda **args: stack.up(show_secrets=False, **args))
    return Outcome(dict(result.summary.resource_changes or {}), drift, dict(result.outputs))


def _converging(stack: auto.Stack, settings: EngineSettings, op: Operation, verb: str,
                call: Callable[..., object]) -> tuple[object, Drift]:
    """Run a preview or up ``call`` with the arguments both take (output through the watcher, its
    events, refresh, policy packs); return its result and the drift its refresh found."""
    _take_over_drift(stack, op)
    watch = _Watcher()
    result = _run(lambda: call(on_output=watch.lines(op.on_output), on_event=watch, color="never",
                               expect_no_changes=op.expect_no_changes or None, refresh=op.refresh or None,
                               **_policy_args(settings, op)), stack, verb, watch)
    return result, watch.found()


def refresh(stack: auto.Stack, op: Operation) -> auto.RefreshResult:
    """Run ``pulumi refresh`` on ``stack``: read live objects back into state.

    Raises:
        EngineError: the engine failed.
    """
    watch = _Watcher()
    return _run(lambda: stack.refresh(on_output=watch.lines(op.on_output), show_secrets=False, color="never",
                                      expect_no_changes=op.expect_no_changes or None), stack, "refresh", watch)


def preview_refresh(stack: auto.Stack, op: Operation) -> auto.PreviewResult:
    """Show drift without writing state (``pulumi refresh --preview-only``); return the would-be changes.

    ``change_summary`` maps op -> count: anything but ``same`` is an object whose live state differs
    from the stack's state. (``stack.refresh(preview_only=True)`` would return the summary of the
    last real update instead, so this uses the preview's own summary event.)

    Raises:
        EngineError: the engine failed.
    """
    watch = _Watcher()
    return _run(lambda: stack.preview_refresh(on_output=watch.lines(op.on_output), show_secrets=False,
                                              color="never"), stack, "refresh --preview-only", watch)


@dataclass(frozen=True)
class Protected:
    """A resource of a stack's state that holds records (``protect`` set by the program,
    components/_defaults.holds_data).

    Attributes:
        urn: its Pulumi URN. what: ``Kind namespace/name`` of the Kubernetes object.
    """

    urn: str
    what: str


def protected_resources(stack: auto.Stack) -> list[Protected]:
    """The resources of ``stack``'s state that are protected.

    Raises:
        EngineError: the stack's state could not be read.
    """
    return [Protected(r["urn"], _object_text(r)) for r in _state_resources(stack) if r.get("protect")]


def _state_resources(stack: auto.Stack) -> list[dict]:
    try:
        return stack.export_stack().deployment.get("resources") or []
    except auto.CommandError as failed:
        raise engine_error(f"could not read the state of stack {stack.name}", failed) from failed


def _object_text(resource: dict) -> str:
    """``StatefulSet gm0344/postgresql`` for a state resource (its URN's name when it has no metadata)."""
    outputs = resource.get("outputs") or {}
    meta = outputs.get("metadata") if isinstance(outputs.get("metadata"), dict) else {}
    name = meta.get("name") or resource["urn"].rsplit("::", 1)[-1]
    return f"{outputs.get('kind') or resource.get('type', '')} " + "/".join(filter(None, (meta.get("namespace"), name)))


@contextlib.contextmanager
def unprotected(stack: auto.Stack, held: Iterable[Protected]) -> Iterator[None]:
    """Lift ``protect`` from ``held`` in the state for the body (``pulumi state unprotect``): the one
    way cgkit deletes or replaces what holds records, asked for with ``--allow-data-loss``. When the
    body fails, protection goes back on what is still there (an ``up`` that finishes sets it back from
    the program itself).

    Raises:
        EngineError: the state could not be changed.
    """
    urns = [p.urn for p in held]
    if not urns:
        yield
        return
    _state_cmd(stack, "unprotect", urns)
    try:
        yield
    except BaseException:
        present = {r["urn"] for r in _state_resources(stack)}
        if still := [u for u in urns if u in present]:
            _state_cmd(stack, "protect", still)
        raise


def _state_cmd(stack: auto.Stack, verb: str, urns: list[str]) -> None:
    try:
        stack.workspace._run_pulumi_cmd_sync(["state", verb, "--yes", "--stack", stack.name, *urns])
    except auto.CommandError as failed:
        raise engine_error(f"could not {verb} {len(urns)} resource(s) of stack {stack.name}", failed) from failed


def destroy(stack: auto.Stack, op: Operation, held: Iterable[Protected] = ()) -> auto.DestroyResult:
    """Run ``pulumi destroy`` on ``stack``: delete every resource the stack manages, ``held`` (from
    ``data_held``: the protected ones the caller was allowed to delete) unprotected first.

    The engine's exit status is not taken as proof: an engine cancelled (Ctrl-C) as its destroy began
    exits 0 having deleted nothing ("The resources in the stack have been deleted", no changes; seen
    on the real node in a fleet destroy), so the stack's state is read back and must be empty.

    Raises:
        EngineError: the engine failed, or resources are still in the stack's state after it
            (DataAtRiskError: a protected resource not in ``held``).
    """
    watch = _Watcher()
    with unprotected(stack, held):  # what is left gets its protection back
        result = _run(lambda: stack.destroy(on_output=watch.lines(op.on_output), show_secrets=False, color="never"),
                      stack, "destroy", watch)
        if left := _state_resources(stack):
            raise EngineError(f"destroy of {stack.name} ended with {len(left)} resource(s) still in its state: the "
                              "engine stopped before deleting them (cancelled as it began)", hint="run the destroy again")
    return result


def data_held(stack: auto.Stack, allow_data_loss: bool) -> list[Protected]:
    """The protected resources of ``stack`` a destroy would delete, when ``allow_data_loss``.

    Raises:
        DataAtRiskError: it holds some and ``allow_data_loss`` is false (nothing was changed).
        EngineError: the stack's state could not be read.
    """
    held = protected_resources(stack)
    if held and not allow_data_loss:
        env, _, code = stack.name.partition(".")
        raise DataAtRiskError(f"refusing to destroy {stack.name}: it holds records in "
                              f"{', '.join(p.what for p in held)}; nothing was deleted",
                              hint=f"take a backup first, then: cgkit destroy --env {env} {code.upper()} "
                                   f"--allow-data-loss {code.upper()}")
    return held


#: The Kubernetes provider's switch for server-side apply with ``force``: take over fields that another
#: field manager (``kubectl edit``, a client library) changed.
PATCH_FORCE = "PULUMI_K8S_ENABLE_PATCH_FORCE"


def _take_over_drift(stack: auto.Stack, op: Operation) -> None:
    """With ``op.refresh``, let the update take back fields changed by another field manager, once
    the stack manages Kubernetes objects (sets PATCH_FORCE for this stack's engine runs).

    A field changed by hand (a Pod Security label set to ``privileged`` with kubectl) belongs to
    that manager afterwards, and a plain server-side apply of cgkit's value then fails with a field
    conflict: the drift would stay. The first deployment of a stack is never forced, so an object
    someone else made under the same name (a namespace made by hand) is a conflict, not taken over.

    Raises:
        EngineError: the stack's state could not be read.
    """
    if not op.refresh:
        return
    if any(str(r.get("type", "")).startswith("kubernetes:") for r in _state_resources(stack)):
        stack.workspace.env_vars[PATCH_FORCE] = "true"


def _policy_args(settings: EngineSettings, op: Operation) -> dict[str, list[str]]:
    if not op.policies or not settings.policy_packs:
        return {}
    args = {"policy_packs": [str(p) for p in settings.policy_packs]}
    if settings.policy_pack_configs:
        args["policy_pack_configs"] = [str(p) for p in settings.policy_pack_configs]
    return args


class _Watcher:
    """Watches one engine operation: its output lines (through ``QuietTracebacks``) and its events.

    The events give the refresh steps of a preview or update (``on_event``).
    A refresh step (op ``refresh``) whose new state is missing is an object gone from the cluster;
    one with changed keys (``diffs``) is an object that drifted. Also owns the operation's
    ``QuietTracebacks`` output filter, flushed by ``_run`` when the operation ends.
    """

    def __init__(self) -> None:
        self.drifted: list[str] = []
        self.gone: list[str] = []
        self.quiet: QuietTracebacks | None = None

    def __call__(self, event: auto.EngineEvent) -> None:
        outputs = event.res_outputs_event
        if outputs is None or outputs.metadata.op != auto.OpType.REFRESH:
            return
        meta = outputs.metadata
        if meta.new is None:
            self.gone.append(_describe(meta))
        elif meta.diffs or meta.detailed_diff:
            self.drifted.append(_describe(meta))

    def lines(self, on_output: Callable[[str], object]) -> Callable[[str], None]:
        """Return ``on_output`` behind a new ``QuietTracebacks`` filter (``_run`` flushes it at the end)."""
        self.quiet = QuietTracebacks(on_output)
        return self.quiet.feed

    def found(self) -> Drift:
        """Return the drift recorded so far, sorted."""
        return Drift(tuple(sorted(self.drifted)), tuple(sorted(self.gone)))


def _describe(meta: auto.events.StepEventMetadata) -> str:
    """Return ``Kind namespace/name`` of a step's Kubernetes object (from its old state), or the URN's
    type and name for anything else."""
    kind = meta.type.rsplit(":", 1)[-1]
    state = meta.old or meta.new
    metadata = (state.outputs or {}).get("metadata") if state else None
    if isinstance(metadata, dict) and metadata.get("name"):
        where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
        return f"{kind} {where}{metadata['name']}"
    return f"{kind} {meta.urn.rsplit('::', 1)[-1]}"


def named(items: Sequence[str], limit: int = 3) -> str:
    """``a, b, c, and 2 more`` for ``items`` (the first ``limit`` named)."""
    return ", ".join(items[:limit]) + (f", and {len(items) - limit} more" if len(items) > limit else "")


class QuietTracebacks:
    """An output filter that leaves out the Python tracebacks of plugins the engine stopped.

    When an operation fails or is cancelled, the engine stops its plugins with SIGINT; the Python
    ones (the policy pack, the program) then print a traceback chain of some 50 lines ending in
    ``KeyboardInterrupt`` (often after "Resource monitor has terminated" errors) that says nothing
    about the failure. A chain of traceback blocks (``Traceback (most recent call last):`` to its
    exception line, blocks joined by "During handling of the above exception ...") is held back
    until it ends and dropped when any of its blocks ends in ``KeyboardInterrupt``; one line says so
    instead; so is an "Exception ignored in:" traceback that follows it (the program's shutdown).
    Lines are judged without the engine's progress prefix (`` +  pulumi:pulumi:Stack s creating (1s) ``).
    Any other traceback (a bug in the program, say) passes through whole. At most ``MAX_HELD``
    lines are held back; a longer chain passes through.
    """

    MAX_HELD = 400
    _START = re.compile(r"Traceback \(most recent call last\):")
    _CHAIN = re.compile(r"During handling of the above exception|The above exception was the direct cause"
                        r"|^Exception ignored in: ")
    #: The engine's progress prefix on a resource's lines (`` +  pulumi:pulumi:Stack s creating (1s) ``),
    #: and its ticker line (``@ updating....``).
    _PROGRESS = re.compile(r"^\s*[-+~]*\s+\S+ \S+ [a-z* ]+\(\d+s\) ")
    _TICKER = re.compile(r"^@ \w+\.*\s*$")
    _FRAME = re.compile(r"^\s*(File \"|\^+\s*$|~+)")

    def __init__(self, on_output: Callable[[str], object]):
        self.on_output = on_output
        self.held: list[str] = []
        self.indent: int | None = None  #: of the chain's first "Traceback" line; None = not in a chain
        self.in_block = False
        self.interrupted = False
        self.prefixed = False  #: the chain is in the engine's progress lines

    def feed(self, line: str) -> None:
        """Take one line of the engine's output; pass it on unless it belongs to a dropped traceback."""
        raw = line.rstrip("\n")
        text = self._PROGRESS.sub("", raw)
        if self.indent is not None and self._TICKER.match(text):
            self.held.append(line)
            return
        if self.indent is not None and self.prefixed and text == raw:
            self.flush()  # a chain in progress lines ends at the first line without that prefix
        if self.indent is not None and not self.in_block:
            deeper = len(text) - len(text.lstrip()) > self.indent or text.strip().startswith(">")
            if not text.strip() or deeper or self._CHAIN.search(text) or self._START.search(text):
                self.held.append(line)  # the exception's message goes on, or the chain does
                self.in_block = bool(self._START.search(text))
                return
            self.flush()
        if self.indent is None:
            if not self._START.search(text):
                self.on_output(line)
                return
            self.indent, self.in_block, self.held = len(text) - len(text.lstrip()), True, [line]
            self.prefixed = text != raw
            return
        self.held.append(line)
        body = text[self.indent:] if len(text) - len(text.lstrip()) <= self.indent else ""
        if body.strip() and not self._FRAME.match(text) and not body.startswith(" ") and not self._START.search(text):
            self.in_block = False
            self.interrupted = self.interrupted or body.startswith("KeyboardInterrupt")
        elif len(self.held) > self.MAX_HELD:
            self.interrupted = False
            self.flush()

    def flush(self) -> None:
        """End the chain held back: drop it (with a note) when it was an interrupt, else pass it on."""
        held, interrupted = self.held, self.interrupted
        self.held, self.indent, self.in_block, self.interrupted = [], None, False, False
        if interrupted:
            self.on_output(f"({len(held)} lines of Python traceback left out: a plugin stopped by the engine "
                           "after the failure (KeyboardInterrupt), not its cause)")
            return
        for line in held:
            self.on_output(line)


def _run(call: Callable[[], object], stack: auto.Stack, verb: str, watch: _Watcher | None = None):
    """Run one engine operation; map its failures to EngineError.

    While it runs, SIGTERM is passed on to the engine as SIGINT (a terminal's Ctrl-C reaches it
    directly) and the call is left to finish: the CLI then cancels gracefully (in-flight steps end,
    the stack's lock is released) instead of being cut off with the stack locked and its plugins
    orphaned. From a fleet's worker threads nothing is forwarded: the terminal's Ctrl-C reaches
    the engines itself.
    """
    interrupted: list[int] = []
    previous = _forward_interrupts(interrupted)
    try:
        return call()
    except auto.ConcurrentUpdateError as locked:
        raise StackLockedError(f"{verb} of {stack.name}: another update holds the stack's lock",
                               hint=f"wait for it, or if none runs: pulumi cancel -s {stack.name}") from locked
    except auto.CommandError as failed:
        signal_number = _killing_signal(str(failed))
        if signal_number:
            raise EngineInterruptedError(f"{verb} of {stack.name}: the engine was stopped by signal {signal_number} "
                                         f"before it could cancel; {_release_lock(stack)}") from failed
        if interrupted:
            raise EngineError(f"{verb} of {stack.name} interrupted; the engine stopped and released the stack",
                              hint=f"run `cgkit refresh` for the stack, then `cgkit {verb}` again") from None
        if held := _PROTECTED_STEP.findall(str(failed)):
            raise _data_at_risk(stack.name, verb, held) from None
        raise engine_error(f"{verb} of {stack.name} failed", failed) from failed
    finally:
        if watch is not None and watch.quiet is not None:
            watch.quiet.flush()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


#: The engine refusing a step on a protected resource: ``unable to replace resource "<urn>"`` followed
#: (on the next line) by ``as it is currently marked for protection``.
_PROTECTED_STEP = re.compile(r'unable to (delete|replace) resource "([^"]+)"\s+as it is currently marked for protection')


def _data_at_risk(stack_name: str, verb: str, held: list[tuple[str, str]]) -> DataAtRiskError:
    """The error for a preview or update the engine stopped at a protected resource: which ones and
    how to go ahead on purpose (stack ``<env>.<code>``)."""
    env, _, code = stack_name.partition(".")
    what = ", ".join(sorted({f"{step} {urn.rsplit('$', 1)[-1].replace('::', ' ')}" for step, urn in held}))
    return DataAtRiskError(f"{verb} of {stack_name} stopped: it would {what}, which holds records; nothing was "
                           "changed", hint=f"if that is meant, take a backup first, then: cgkit up --env {env} "
                                           f"{code.upper()} --allow-data-loss {code.upper()}")


#: How the engine's display tags a blocking policy finding (an exempted one says "[exempted: ...]" first).
_MANDATORY_VIOLATION = re.compile(r"^(?!.*exempted).*\[mandatory\]", re.MULTILINE)


def _killing_signal(text: str) -> int | None:
    """Return the signal that ended the engine process (its exit code is ``-signal``), or None."""
    code = re.search(r"^\s*code: (-?\d+)", text, re.MULTILINE)
    return -int(code.group(1)) if code and int(code.group(1)) < 0 else None


def _release_lock(stack: auto.Stack) -> str:
    """Remove the lock an engine process killed mid-start left on ``stack`` (``pulumi cancel``; on the
    file backend that deletes the lock file). Safe only because that process is gone; return what
    happened, as a sentence."""
    try:
        stack.cancel()
    except auto.CommandError as failed:
        return f"could not release its stack lock ({_last_lines(str(failed), 1)}); run: pulumi cancel -s {stack.name}"
    return "released the stack lock it left"


def _why(text: str, count: int = 12) -> str:
    """Return the lines of an engine failure that say why: each distinct ``error:`` message (from
    the first ``error:`` on; not the closing "error: update failed") and each ``[mandatory]`` policy
    finding, in order, at most ``count``; when there are none, the last ``count`` lines. Follow-on
    noise is left out: "context canceled" (the engine stopping the rest after the first error) unless
    it is the only reason, and the tracebacks ``QuietTracebacks`` drops."""
    kept: list[str] = []
    quiet = QuietTracebacks(kept.append)
    for line in text.splitlines():
        quiet.feed(line)
    quiet.flush()
    reasons: list[str] = []
    for line in kept:
        found = _ERROR_MARK.search(line)
        reason = line.strip() if "[mandatory]" in line else line[found.start():].strip() if found else ""
        if reason and reason not in reasons and not _GENERIC_FAILURE.match(reason):
            reasons.append(reason)
    causes = [r for r in reasons if not _CANCELLED.search(r)] or reasons
    return "\n".join(causes[:count]) if causes else _last_lines("\n".join(kept), count)


def _last_lines(text: str, count: int = 12) -> str:
    """Return the last ``count`` non-empty lines of an engine error."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])


#: Where the engine's own message starts ("error:" as a word; not "RunError:" of a Python traceback).
_ERROR_MARK = re.compile(r"(?<![A-Za-z])error:")
#: A step or policy the engine stopped because something else failed first.
_CANCELLED = re.compile(r"context canceled")
#: The engine's closing line, which says only that it failed.
_GENERIC_FAILURE = re.compile(r"error:\s*((update|preview|refresh|destroy) failed)?\s*$")


def _forward_interrupts(interrupted: list[int]) -> dict[int, object]:
    """Install SIGINT/SIGTERM handlers that pass the signal on to the engine (main thread only);
    return the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def forward(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        if signum == signal.SIGINT:  # a terminal's Ctrl-C reaches the engine too; a second SIGINT would kill it
            return
        for pid in _child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    return {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}


def engine_error(what: str, failed: auto.CommandError) -> EngineError:
    """Return an EngineError for a failed CLI call: its cause, and a hint where one is known."""
    text = str(failed)
    hint = None
    if "incorrect passphrase" in text:
        hint = ("the stack's secrets were encrypted with another passphrase: set PULUMI_CONFIG_PASSPHRASE "
                "to that one, or restore .cgkit/passphrase")
    elif "unknown stack" in text and ".platform" in text:
        hint = "deploy the platform stack first: cgkit up --env <env> platform"
    kind = PolicyViolationError if _MANDATORY_VIOLATION.search(text) else EngineError
    return kind(f"{what}: {_why(text)}", hint=hint)


def _child_pids() -> list[int]:
    """Return the pids of this process's direct children (from /proc)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(stat.parent.name))
    return found
