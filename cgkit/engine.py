"""Drive Pulumi stacks through the Automation API with the local program in stacks/.

The engine is the real Pulumi CLI from the offline toolchain (tools/), with a local file state
backend under ``<root>/.cgkit/state`` and a passphrase secrets provider. Nothing here decides what
is deployed; it only selects the stack, makes sure its generated secrets exist (encrypted in the
stack's config file), and runs preview / up / refresh / destroy, streaming the engine's output.

Environment the engine runs with (research/toolchain.md, "Running the engine offline"):
``PATH`` (toolchain bin first), ``PULUMI_BACKEND_URL``, ``PULUMI_CONFIG_PASSPHRASE_FILE``,
``PULUMI_SKIP_UPDATE_CHECK``, ``PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION``, ``PULUMI_HOME`` and,
for a sandbox environment, ``KUBECONFIG`` of the local sandbox.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets as token_source
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from cgkit import toolchain
from cgkit.errors import CgkitError, EngineError, EngineInterruptedError, PolicyViolationError, StackLockedError
from cgkit.project import state_dir

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
    """

    root: Path
    kubeconfig: Path | None = None
    policy_packs: list[Path] = field(default_factory=list)
    policy_pack_configs: list[Path] = field(default_factory=list)


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


def engine_env(settings: EngineSettings) -> dict[str, str]:
    """Return the environment variables every engine command runs with (see module doc)."""
    state = state_dir(settings.root)
    (state / "state").mkdir(exist_ok=True)
    home = Path(os.environ.get("PULUMI_HOME", state / "pulumi-home"))
    env = {
        **toolchain.engine_env(pulumi_home=home),  # PATH (toolchain, then this Python's bin), no downloads
        "PULUMI_BACKEND_URL": os.environ.get("PULUMI_BACKEND_URL", f"file://{state / 'state'}"),
        "PULUMI_CONFIG_PASSPHRASE_FILE": os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE", ""),
    }
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
        env["PULUMI_CONFIG_PASSPHRASE"] = os.environ["PULUMI_CONFIG_PASSPHRASE"]
        del env["PULUMI_CONFIG_PASSPHRASE_FILE"]
    elif not env["PULUMI_CONFIG_PASSPHRASE_FILE"]:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file(settings.root))
    if settings.kubeconfig:
        env["KUBECONFIG"] = str(settings.kubeconfig)
    return env


def select_stack(settings: EngineSettings, stack_name: str) -> auto.Stack:
    """Select (creating when absent) the stack ``stack_name`` of the project at ``settings.root``.

    The CLI process's own PATH gets the toolchain bin dir first, so the Automation API finds the
    toolchain's ``pulumi``.

    Raises:
        EngineError: the Pulumi CLI is missing or refused the stack.
    """
    env = engine_env(settings)
    os.environ["PATH"] = env["PATH"]
    try:
        return auto.create_or_select_stack(
            stack_name,
            work_dir=str(settings.root),
            opts=auto.LocalWorkspaceOptions(work_dir=str(settings.root), env_vars=env,
                                            pulumi_home=env["PULUMI_HOME"], secrets_provider="passphrase"),
        )
    except FileNotFoundError as missing:
        raise toolchain_missing() from missing
    except auto.CommandError as failed:
        raise _engine_error(f"could not select stack {stack_name}", failed) from failed


def workspace(settings: EngineSettings) -> auto.LocalWorkspace:
    """Return the project's workspace (no stack selected), for listing and removing stacks."""
    env = engine_env(settings)
    os.environ["PATH"] = env["PATH"]
    return auto.LocalWorkspace(work_dir=str(settings.root), env_vars=env, pulumi_home=env["PULUMI_HOME"])


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


def toolchain_missing() -> CgkitError:
    """Return the error for a missing Pulumi CLI, pointing at the build script."""
    return EngineError("the Pulumi CLI is not built", hint="run tools/build-toolchain, then cgkit doctor")


def ensure_secrets(stack: auto.Stack, names: Iterable[str]) -> list[str]:
    """Generate every missing secret of ``names`` into the stack's config, encrypted; return the new names.

    Existing values are never changed, so secrets stay stable across runs. Values are random
    URL-safe text of SECRET_BYTES bytes and are never printed.
    """
    try:
        present = stack.get_all_config()
    except auto.CommandError as failed:
        raise _engine_error(f"could not read the config of stack {stack.name}", failed) from failed
    created = []
    for name in names:
        key = f"{CONFIG_NAMESPACE}:{name}"
        if key not in present:
            stack.set_config(key, auto.ConfigValue(token_source.token_urlsafe(SECRET_BYTES), secret=True))
            created.append(name)
    return created


def missing_config(stack: auto.Stack, names: Iterable[str]) -> list[str]:
    """The names of ``names`` that have no ``cgkit:<name>`` value in the stack's config, in order.

    Raises:
        EngineError: the config could not be read.
    """
    try:
        present = stack.get_all_config()
    except auto.CommandError as failed:
        raise _engine_error(f"could not read the config of stack {stack.name}", failed) from failed
    return [name for name in names if f"{CONFIG_NAMESPACE}:{name}" not in present]


@dataclass
class Operation:
    """One engine operation's options.

    Attributes:
        on_output: receives each line the engine prints (already free of secret values).
        policies: apply the settings' policy packs (preview and up only).
        expect_no_changes: fail when the operation would change anything.
    """

    on_output: Callable[[str], object] = print
    policies: bool = True
    expect_no_changes: bool = False


def preview(stack: auto.Stack, settings: EngineSettings, op: Operation) -> auto.PreviewResult:
    """Run ``pulumi preview`` on ``stack``; return its result (``change_summary``: op -> count).

    Raises:
        EngineError: the engine failed, or a mandatory policy was violated.
    """
    return _run(lambda: stack.preview(on_output=op.on_output, diff=False, color="never",
                                      expect_no_changes=op.expect_no_changes or None,
                                      **_policy_args(settings, op)), stack, "preview")


def up(stack: auto.Stack, settings: EngineSettings, op: Operation) -> auto.UpResult:
    """Run ``pulumi up`` on ``stack`` (secrets hidden in the output); return its result.

    Raises:
        EngineError: the engine failed, or a mandatory policy was violated.
    """
    return _run(lambda: stack.up(on_output=op.on_output, show_secrets=False, color="never",
                                 expect_no_changes=op.expect_no_changes or None,
                                 **_policy_args(settings, op)), stack, "up")


def refresh(stack: auto.Stack, op: Operation) -> auto.RefreshResult:
    """Run ``pulumi refresh`` on ``stack``: read live objects back into state.

    Raises:
        EngineError: the engine failed.
    """
    return _run(lambda: stack.refresh(on_output=op.on_output, show_secrets=False, color="never",
                                      expect_no_changes=op.expect_no_changes or None), stack, "refresh")


def preview_refresh(stack: auto.Stack, op: Operation) -> auto.PreviewResult:
    """Show drift without writing state (``pulumi refresh --preview-only``); return the would-be changes.

    ``change_summary`` maps op -> count: anything but ``same`` is an object whose live state differs
    from the stack's state. (``stack.refresh(preview_only=True)`` would return the summary of the
    last real update instead, so this uses the preview's own summary event.)

    Raises:
        EngineError: the engine failed.
    """
    return _run(lambda: stack.preview_refresh(on_output=op.on_output, show_secrets=False, color="never"),
                stack, "refresh --preview-only")


def destroy(stack: auto.Stack, op: Operation) -> auto.DestroyResult:
    """Run ``pulumi destroy`` on ``stack``: delete every resource the stack manages.

    Raises:
        EngineError: the engine failed.
    """
    return _run(lambda: stack.destroy(on_output=op.on_output, show_secrets=False, color="never"),
                stack, "destroy")


def _policy_args(settings: EngineSettings, op: Operation) -> dict[str, list[str]]:
    if not op.policies or not settings.policy_packs:
        return {}
    args = {"policy_packs": [str(p) for p in settings.policy_packs]}
    if settings.policy_pack_configs:
        args["policy_pack_configs"] = [str(p) for p in settings.policy_pack_configs]
    return args


def _run(call: Callable[[], object], stack: auto.Stack, verb: str):
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
        raise _engine_error(f"{verb} of {stack.name} failed", failed) from failed
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    finding, in order, at most ``count``; when there are none, the last ``count`` lines."""
    reasons: list[str] = []
    for line in text.splitlines():
        found = _ERROR_MARK.search(line)
        reason = line.strip() if "[mandatory]" in line else line[found.start():].strip() if found else ""
        if reason and reason not in reasons and not _GENERIC_FAILURE.match(reason):
            reasons.append(reason)
    return "\n".join(reasons[:count]) if reasons else _last_lines(text, count)


def _last_lines(text: str, count: int = 12) -> str:
    """Return the last ``count`` non-empty lines of an engine error."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])


#: Where the engine's own message starts ("error:" as a word; not "RunError:" of a Python traceback).
_ERROR_MARK = re.compile(r"(?<![A-Za-z])error:")
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


def _engine_error(what: str, failed: auto.CommandError) -> EngineError:
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
