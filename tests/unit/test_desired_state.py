"""Desired state without a cluster: what a refresh before up found (from engine events), output and
errors without the tracebacks of stopped plugins, a workspace that never selects a stack, the
per-stack lock, and which commands may create a stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult, PulumiCommand
from semver import VersionInfo

from cgkit import engine
from cgkit import stackops
from cgkit.cli import stack_cmds
from cgkit.cli.app import main
from cgkit.cli.exit_codes import ExitStatus
from cgkit.onboard import onboard

NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def refresh_event(name: str, new: bool = True, diffs: list[str] | None = None, op: str = "refresh") -> auto.EngineEvent:
    """An engine event as the CLI emits it for one refresh step of ``gm0344/<name>``."""
    state = {"type": NETPOL, "urn": f"urn:pulumi:s::p::{NETPOL}::{name}",
             "outputs": {"metadata": {"name": name, "namespace": "gm0344"}}}
    metadata = {"op": op, "urn": state["urn"], "type": NETPOL, "provider": "", "old": state,
                "new": state if new else None, "diffs": diffs or []}
    return auto.EngineEvent.from_json({"sequence": 1, "timestamp": 0, "resOutputsEvent": {"metadata": metadata}})


# --- what the refresh found -----------------------------------------------------------------------


def test_refresh_steps_become_drifted_and_gone_objects() -> None:
    watcher = engine._Watcher()
    watcher(refresh_event("default-deny", new=False))
    watcher(refresh_event("allow-dns", diffs=["spec"]))
    watcher(refresh_event("allow-web"))  # read back unchanged
    watcher(refresh_event("allow-web", op="create"))  # the update's own step, not the refresh's
    drift = watcher.found()
    assert drift == engine.Drift(drifted=("NetworkPolicy gm0344/allow-dns",), gone=("NetworkPolicy gm0344/default-deny",))
    assert drift.counts() == {"refresh-drifted": 1, "refresh-gone": 1}
    assert drift.text() == ("refresh found 1 drifted (NetworkPolicy gm0344/allow-dns), "
                            "1 gone (NetworkPolicy gm0344/default-deny)")
    assert engine.Drift().text() == "refresh found no drift" and engine.Drift().counts() == {}


def test_drift_text_names_at_most_the_limit() -> None:
    drift = engine.Drift(gone=tuple(f"ConfigMap gm0344/c{i}" for i in range(4)))
    assert drift.text(limit=2) == "refresh found 4 gone (ConfigMap gm0344/c0, ConfigMap gm0344/c1, and 2 more)"


# --- no tracebacks of stopped plugins ------------------------------------------------------------

INTERRUPTED_PLUGIN = """\
    error: failed to run policy: context canceled
    Traceback (most recent call last):
      File "/work/policies/__main__.py", line 17, in <module>
        PolicyPack(name=PACK_NAME, policies=policies())
      File "/venv/pulumi_policy/policy.py", line 310, in __init__
        server.wait_for_termination()
        ~~~~~~~~~~~~~~~~~~~~~~~~~~~^^
    KeyboardInterrupt

    During handling of the above exception, another exception occurred:

    Traceback (most recent call last):
      File "/venv/grpc/_server.py", line 1200, in stop
        self._state.lock.acquire()
    KeyboardInterrupt
after the traceback"""

#: As the engine printed it when an up failed on a field conflict (sandbox, 2026-12-02): the program's
#: chain of RunErrors after the engine shut down, ending in the KeyboardInterrupt of its stop.
CANCELLED_PROGRAM = """\
    Traceback (most recent call last):
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/resource.py", line 1340, in do_rpc_call
        return monitor.RegisterResource(req)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/grpc/_channel.py", line 1168, in __call__
        return _end_unary_response_blocking(state, call, False, None)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/grpc/_channel.py", line 999, in _end_unary_response_blocking
        raise _InactiveRpcError(state)  # pytype: disable=not-instantiable
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
    grpc._channel._InactiveRpcError: <_InactiveRpcError of RPC that terminated with:
    	status = StatusCode.UNAVAILABLE
    	details = "resource monitor shut down while waiting on step's done channel"
    	debug_error_string = "UNAVAILABLE:resource monitor shut down while waiting on step's done channel"
    >
    During handling of the above exception, another exception occurred:
    Traceback (most recent call last):
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/resource.py", line 1344, in do_register
        resp = await asyncio.get_running_loop().run_in_executor(
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/root/.pyenv/versions/3.11.7/lib/python3.11/concurrent/futures/thread.py", line 58, in run
        result = self.fn(*self.args, **self.kwargs)
                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/_context.py", line 39, in wrapper
        return python_ctx.run(run, *args, **kwargs)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/_context.py", line 34, in run
        return fn(*args, **kwargs)
               ^^^^^^^^^^^^^^^^^^^
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/resource.py", line 1342, in do_rpc_call
        handle_grpc_error(exn)
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/settings.py", line 352, in handle_grpc_error
        raise grpc_error_to_exception(exn)
    pulumi.errors.RunError: Resource monitor has terminated, shutting down
    During handling of the above exception, another exception occurred:
    Traceback (most recent call last):
      File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py", line 142, in run_in_stack
        await run_pulumi_func(run)
    KeyboardInterrupt
Resources:"""

#: The same in the engine's progress lines (cluster lost mid-up, sandbox, 2026-12-02), then the
#: program's "Exception ignored in" traceback of its shutdown.
PROGRESS_LINES = """\
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s) Traceback (most recent call last):
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)   File "/root/.cache/cgkit/toolchain/8fd1a8cc524d/libexec/pulumi-language-python-exec", line 197, in <module>
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)     loop.run_until_complete(coro)
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)   File "/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/base_events.py", line 640, in run_until_complete
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)     self.run_forever()
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)   File "/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/base_events.py", line 607, in run_forever
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)     self._run_once()
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)   File "/root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/base_events.py", line 1884, in _run_once
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)     event_list = self._selector.select(timeout)
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)   File "/root/.pyenv/versions/3.11.7/lib/python3.11/selectors.py", line 468, in select
@ updating....
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)     fd_event_list = self._selector.poll(timeout, max_ev)
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s)                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (1s) KeyboardInterrupt
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s) Exception ignored in: <coroutine object run_in_stack at 0x7fb215384110>
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s) Traceback (most recent call last):
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s)   File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py", line 254, in run_in_stack
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s)   File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/stack.py", line 145, in run_pulumi_func
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s)   File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/settings.py", line 285, in _shutdown_callbacks
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s)   File "/work/wt-converge/.venv/lib/python3.11/site-packages/pulumi/runtime/_callbacks.py", line 110, in shutdown
 +  pulumi:pulumi:Stack cgkit-sandbox.gm0307 creating (2s) RuntimeError: no running event loop
    kubernetes:networking.k8s.io/v1:NetworkPolicy gm0307-netpol-allow-dns **failed** 1 error"""

PROGRAM_BUG = """\
Traceback (most recent call last):
  File "/work/stacks/__main__.py", line 3, in <module>
    deploy(cfg)
ValueError: municipality GM0344: unknown app(s) openzaken
done"""


def filtered(text: str) -> list[str]:
    lines: list[str] = []
    quiet = engine.QuietTracebacks(lines.append)
    for line in text.splitlines():
        quiet.feed(line)
    quiet.flush()
    return lines


def test_a_stopped_plugins_keyboardinterrupt_traceback_is_left_out_with_a_note() -> None:
    lines = filtered(INTERRUPTED_PLUGIN)
    assert lines[0] == "    error: failed to run policy: context canceled"
    assert "14 lines of Python traceback left out" in lines[1] and "KeyboardInterrupt" in lines[1]
    assert lines[2:] == ["after the traceback"]


def test_a_chain_that_ends_in_keyboardinterrupt_is_left_out_whole() -> None:
    lines = filtered(CANCELLED_PROGRAM)
    assert len(lines) == 2 and "lines of Python traceback left out" in lines[0] and lines[1] == "Resources:", lines


def test_tracebacks_in_progress_lines_are_left_out_too() -> None:
    lines = filtered(PROGRESS_LINES)
    assert not [line for line in lines if "Traceback" in line or "RuntimeError" in line], lines
    assert "lines of Python traceback left out" in lines[0]
    assert lines[-1].strip().startswith("kubernetes:networking.k8s.io/v1:NetworkPolicy gm0307-netpol-allow-dns")


def test_any_other_traceback_passes_whole() -> None:
    assert filtered(PROGRAM_BUG) == PROGRAM_BUG.splitlines()


def test_a_traceback_cut_off_by_the_end_of_output_is_passed_on() -> None:
    assert filtered("Traceback (most recent call last):\n  File \"x\", line 1") == [
        "Traceback (most recent call last):", "  File \"x\", line 1"]


def test_the_error_names_the_cause_not_the_cancel_that_followed() -> None:
    text = ("error: kubernetes:core/v1:Namespace gm0344: dial tcp 127.0.0.1:6443: connect: connection refused\n"
            + INTERRUPTED_PLUGIN)
    why = engine._why(text)
    assert why == "error: kubernetes:core/v1:Namespace gm0344: dial tcp 127.0.0.1:6443: connect: connection refused"
    assert engine._why("error: failed to run policy: context canceled") == "error: failed to run policy: context canceled"


# --- Pulumi's selected stack is left alone -------------------------------------------------------


class FakePulumi(PulumiCommand):
    """The Pulumi CLI as the SDK drives it, recording each command line; ``missing`` stacks are unknown."""

    def __init__(self, missing: set[str]):
        self.command, self.version, self.calls, self.missing = "pulumi", VersionInfo(3, 274, 1), [], missing

    def run(self, args, cwd, additional_env, on_output=None, on_error=None) -> CommandResult:
        self.calls.append(list(args))
        if args[:2] == ["stack", "--show-name"] and args[-1] in self.missing:
            raise auto.errors.create_command_error(
                CommandResult("", f"error: no stack named '{args[-1]}' found", 255))
        if args[:2] == ["stack", "init"]:
            self.missing.discard(args[2])
        return CommandResult("", "", 0)


def test_opening_or_creating_a_stack_never_selects_one(tmp_path: Path) -> None:
    fake = FakePulumi(missing={"sandbox.gm0153"})
    ws = engine._Workspace(work_dir=str(tmp_path), pulumi_command=fake, secrets_provider="passphrase")
    assert auto.Stack.create_or_select("sandbox.gm0344", ws).name == "sandbox.gm0344"
    auto.Stack.create_or_select("sandbox.gm0153", ws)
    assert fake.calls == [["stack", "--show-name", "--stack", "sandbox.gm0344"],
                          ["stack", "--show-name", "--stack", "sandbox.gm0153"],
                          ["stack", "init", "sandbox.gm0153", "--no-select", "--secrets-provider", "passphrase"]]
    assert not [call for call in fake.calls if "select" in call]


def test_existing_stack_is_none_for_an_unknown_stack(tmp_path: Path, monkeypatch) -> None:
    fake = FakePulumi(missing={"sandbox.gm0153"})
    monkeypatch.setattr(engine, "workspace", lambda settings: engine._Workspace(
        work_dir=str(tmp_path), pulumi_command=fake))
    settings = engine.EngineSettings(root=tmp_path)
    assert engine.existing_stack(settings, "sandbox.gm0153") is None
    assert engine.existing_stack(settings, "sandbox.gm0344").name == "sandbox.gm0344"
    assert not [call for call in fake.calls if call[:2] == ["stack", "init"]]


# --- one creator of a new stack --------------------------------------------------------------------

TRY_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a+") as handle:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(11)
"""


def test_the_stack_lock_keeps_out_another_process_until_released(tmp_path: Path) -> None:
    lock_file = tmp_path / ".cgkit" / "locks" / "sandbox.gm0344.lock"

    def other_process_gets_it() -> bool:
        return subprocess.run([sys.executable, "-c", TRY_LOCK, str(lock_file)]).returncode == 0

    with engine.stack_lock(tmp_path, "sandbox.gm0344"):
        assert not other_process_gets_it()
    assert other_process_gets_it()


class FakeEngine:
    """The engine calls open_stack makes, recorded; ``existing`` names the stacks that exist."""

    def __init__(self, existing: set[str]):
        self.existing, self.created, self.secrets_for = existing, [], []

    def install(self, monkeypatch, cluster_up: bool = True) -> None:
        if cluster_up:
            monkeypatch.setattr(stackops, "check_environment", lambda *args: None)
        monkeypatch.setattr(engine, "existing_stack", lambda s, name: FakeStack(name) if name in self.existing else None)
        monkeypatch.setattr(engine, "select_stack", self.create)
        monkeypatch.setattr(engine, "ensure_secrets", self.ensure)

    def create(self, settings, name):
        self.created.append(name)
        return FakeStack(name)

    def ensure(self, stack, names):
        self.secrets_for.append(stack.name)
        return list(names)


class FakeStack:
    def __init__(self, name: str):
        self.name = name

    def outputs(self) -> dict:
        """A stack never deployed has none (cgkit.upgrade reads its ``release``)."""
        return {}


@pytest.fixture
def project(scratch_root: Path, monkeypatch) -> Path:
    monkeypatch.setenv("CGKIT_PROJECT_DIR", str(scratch_root))
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(scratch_root / "sandbox"))
    monkeypatch.delenv("CGKIT_SANDBOX_KUBECONFIG", raising=False)
    (scratch_root / "sandbox").mkdir()
    (scratch_root / "sandbox" / "kubeconfig").write_text("")
    onboard(scratch_root, "sandbox", "GM0344")
    return scratch_root


@pytest.mark.parametrize("purpose", ["refresh", "destroy"])
def test_reading_commands_never_create_a_stack_or_its_secrets(project: Path, monkeypatch, purpose) -> None:
    fake = FakeEngine(existing=set())
    fake.install(monkeypatch)
    with pytest.raises(stackops.StackNotDeployed, match="sandbox.gm0344 does not exist"):
        stackops.open_stack("sandbox", "GM0344", stackops.Verb(purpose))
    assert fake.created == [] and fake.secrets_for == []


def test_refresh_of_a_deployed_stack_writes_no_secrets(project: Path, monkeypatch) -> None:
    fake = FakeEngine(existing={"sandbox.gm0344"})
    fake.install(monkeypatch)
    assert stackops.open_stack("sandbox", "GM0344", stackops.Verb.REFRESH)[1].name == "sandbox.gm0344"
    assert fake.created == [] and fake.secrets_for == []


def test_preview_of_a_new_stack_creates_it_and_says_why(project: Path, monkeypatch) -> None:
    fake = FakeEngine(existing=set())
    fake.install(monkeypatch)
    notes: list[str] = []
    stackops.open_stack("sandbox", "GM0344", stackops.Verb.PREVIEW, notify=notes.append)
    assert fake.created == ["sandbox.gm0344"] and fake.secrets_for == ["sandbox.gm0344"]
    assert "was never deployed: created it (empty) so the program can be previewed" in notes[0]
    assert "because the program reads them" in notes[1]


def test_destroy_of_a_stack_that_does_not_exist_is_nothing_to_do(project: Path, monkeypatch, capsys) -> None:
    FakeEngine(existing=set()).install(monkeypatch)
    assert main(["destroy", "--env", "sandbox", "GM0344", "--yes"]) == ExitStatus.OK
    assert "stack sandbox.gm0344 does not exist: nothing to destroy" in capsys.readouterr().out


def test_the_cluster_is_probed_before_the_engine_runs(project: Path, monkeypatch, capsys) -> None:
    fake = FakeEngine(existing={"sandbox.gm0344"})
    fake.install(monkeypatch, cluster_up=False)
    (project / "sandbox" / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n")
    assert main(["preview", "--env", "sandbox", "GM0344"]) == ExitStatus.FAILED
    printed = capsys.readouterr().err
    assert "the cluster at http://127.0.0.1:1 did not answer" in printed and "cgkit sandbox up" in printed
    assert fake.secrets_for == [], "nothing may reach the engine"


# --- the commands: refresh by default, --no-refresh, what the summary says -----------------------


def fake_operations(monkeypatch, drift: engine.Drift) -> list[engine.Operation]:
    """open_stack and the engine's preview/up replaced; returns the Operations they were given."""
    ops: list[engine.Operation] = []
    monkeypatch.setattr(stack_cmds, "open_stack",
                        lambda env, target, verb, notify: (None, FakeStack(f"{env}.{target.lower()}")))

    def run(stack, settings, op):
        ops.append(op)
        return engine.Outcome({"create": 1, "same": 40}, drift if op.refresh else engine.Drift())

    monkeypatch.setattr(engine, "up", run)
    monkeypatch.setattr(engine, "preview", run)
    return ops


def test_up_refreshes_by_default_and_says_what_it_found(project: Path, monkeypatch, capsys) -> None:
    ops = fake_operations(monkeypatch, engine.Drift(gone=("NetworkPolicy gm0344/default-deny",)))
    assert main(["up", "--env", "sandbox", "GM0344", "--yes"]) == ExitStatus.OK
    assert [op.refresh for op in ops] == [True]
    assert ("up of sandbox.gm0344: 1 created; refresh found 1 gone (NetworkPolicy gm0344/default-deny)"
            in capsys.readouterr().out)


@pytest.mark.parametrize("verb", ["up", "preview"])
def test_no_refresh_skips_it_and_says_so(project: Path, monkeypatch, capsys, verb) -> None:
    ops = fake_operations(monkeypatch, engine.Drift(gone=("NetworkPolicy gm0344/default-deny",)))
    assert main([verb, "--env", "sandbox", "GM0344", "--no-refresh", *(["--yes"] if verb == "up" else [])]) == 0
    assert [op.refresh for op in ops] == [False]
    assert "refresh skipped (--no-refresh)" in capsys.readouterr().out


def test_fleet_up_refreshes_by_default_and_lists_the_drift_it_put_back(project: Path, monkeypatch, capsys) -> None:
    from cgkit.cli import fleet_cmds

    onboard(project, "sandbox", "GM0363")
    seen: list[bool] = []

    def stack_runner(verb, env, run_dir, options):
        seen.append(options.refresh)
        return lambda code: {"create": 1, "same": 9, **({"refresh-gone": 1} if code == "GM0344" else {})}

    monkeypatch.setattr(fleet_cmds, "stack_runner", stack_runner)
    monkeypatch.setattr(fleet_cmds, "check_environment", lambda *args: None)
    assert main(["fleet", "up", "--env", "sandbox", "--yes"]) == ExitStatus.OK
    printed = capsys.readouterr()
    assert "refresh found drift in 1 stack(s)\n  sandbox.gm0344: 1 gone; up put it back" in printed.out
    assert "✓ sandbox.gm0344 +1 ~0 -0" in printed.err and "refresh found 1 gone)" in printed.err
    assert main(["fleet", "up", "--env", "sandbox", "--yes", "--no-refresh"]) == ExitStatus.OK
    assert seen == [True, False]
    assert "refresh skipped (--no-refresh)" in capsys.readouterr().out


def test_the_fleet_runner_adds_what_the_refresh_found_to_the_changes(monkeypatch) -> None:
    from cgkit.fleet import engine_runner

    monkeypatch.setattr(engine, "up", lambda stack, settings, op: engine.Outcome(
        {"update": 1, "same": 3}, engine.Drift(drifted=("Ingress gm0344/openzaak",))))
    lines: list[str] = []
    outcome = stackops.run(stackops.Verb.UP, FakeStack("sandbox.gm0344"), None, lines.append, stackops.RunOptions())
    changes = engine_runner._changes(stackops.Verb.UP, outcome, lines.append, stackops.RunOptions())
    assert changes == {"update": 1, "same": 3, "refresh-drifted": 1}
    assert lines == ["refresh found 1 drifted (Ingress gm0344/openzaak)"]


# --- rotation ----------------------------------------------------------------------------------------


def test_rotation_names_by_app_and_kind() -> None:
    from cgkit import secrets
    from cgkit.errors import InvalidArgumentError
    from tests.unit.components.rendered import make_cfg

    cfg = make_cfg()  # openzaak and opennotificaties, database in the cluster
    assert secrets.rotation_names(cfg) == ["opennotificaties-db-password", "opennotificaties-secret-key",
                                           "openzaak-db-password", "openzaak-secret-key"]
    assert secrets.rotation_names(cfg, "openzaak", "db-password") == ["openzaak-db-password"]
    with pytest.raises(InvalidArgumentError, match="'objecten' is not an enabled app of GM0344") as no_app:
        secrets.rotation_names(cfg, "objecten")
    assert no_app.value.hint == "one of: opennotificaties, openzaak"
    with pytest.raises(InvalidArgumentError, match="--what 'password' cannot be rotated"):
        secrets.rotation_names(cfg, what="password")
    external = make_cfg(database={"mode": "external", "host": "db.utrecht.nl", "port": 5432, "sslmode": "require"})
    assert secrets.rotation_names(external, "openzaak") == ["openzaak-secret-key"]
    with pytest.raises(InvalidArgumentError, match="external"):
        secrets.rotation_names(external, "openzaak", "db-password")


class ConfigStack(FakeStack):
    """A stack whose config writes are recorded."""

    def __init__(self, name: str):
        super().__init__(name)
        self.written: dict[str, auto.ConfigValue] = {}

    def set_all_config(self, values):
        self.written.update(values)


def test_rotate_writes_new_encrypted_values_and_prints_none(project: Path, monkeypatch, capsys) -> None:
    stack = ConfigStack("sandbox.gm0344")
    monkeypatch.setattr(engine, "existing_stack", lambda settings, name: stack if name == stack.name else None)
    assert main(["secrets", "rotate", "--env", "sandbox", "gm0344", "--app", "openzaak"]) == ExitStatus.OK
    assert sorted(stack.written) == ["cgkit:openzaak-db-password", "cgkit:openzaak-secret-key"]
    assert all(v.secret and len(v.value) >= 40 for v in stack.written.values())
    printed = capsys.readouterr().out
    assert "rotated 2 secret(s) of sandbox.gm0344" in printed and "cgkit up --env sandbox GM0344" in printed
    assert not [v for v in stack.written.values() if v.value in printed]


def test_rotate_refuses_a_stack_never_deployed_and_the_platform(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(engine, "existing_stack", lambda settings, name: None)
    assert main(["secrets", "rotate", "--env", "sandbox", "GM0344"]) == ExitStatus.FAILED
    assert "sandbox.gm0344 does not exist: it has no secrets to rotate" in capsys.readouterr().err
    assert main(["secrets", "rotate", "--env", "sandbox", "platform"]) == ExitStatus.FAILED
    assert "the platform stack has no generated secrets" in capsys.readouterr().err


def test_fleet_up_with_the_cluster_down_fails_once_before_any_stack(project: Path, monkeypatch, capsys) -> None:
    from cgkit.cli import fleet_cmds

    calls: list[str] = []
    monkeypatch.setattr(fleet_cmds, "stack_runner", lambda *args: calls.append)
    (project / "sandbox" / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n")
    assert main(["fleet", "up", "--env", "sandbox", "--yes"]) == ExitStatus.FAILED
    assert "the cluster at http://127.0.0.1:1 did not answer" in capsys.readouterr().err
    assert calls == [] and not (project / ".cgkit" / "runs").exists()


def test_a_fleet_preview_says_which_stacks_it_had_to_create(project: Path, monkeypatch, capsys) -> None:
    from cgkit.cli import fleet_cmds
    from cgkit.fleet import engine_runner

    onboard(project, "sandbox", "GM0363")
    FakeEngine(existing={"sandbox.gm0344"}).install(monkeypatch)
    monkeypatch.setattr(fleet_cmds, "check_environment", lambda *args: None)
    monkeypatch.setattr(engine, "preview", lambda stack, settings, op: engine.Outcome({"create": 40}))
    assert main(["fleet", "preview", "--env", "sandbox", "--no-refresh"]) == ExitStatus.OK
    printed = capsys.readouterr().out
    assert "1 stack(s) never deployed were created (empty, with their generated secrets)" in printed
    assert "so the program could be previewed: GM0363" in printed
    report = json.loads(sorted((project / ".cgkit" / "runs").glob("*/report.json"))[-1].read_text())
    assert {s["code"]: s["changes"].get(engine_runner.STACK_CREATED) for s in report["stacks"]} == {
        "GM0344": None, "GM0363": 1}


class StateStack(FakeStack):
    """A stack with a state of the given resource types and a workspace environment."""

    def __init__(self, types: list[str]):
        super().__init__("sandbox.gm0344")
        self.types = types
        self.workspace = type("Ws", (), {"env_vars": {}})()

    def export_stack(self):
        return auto.Deployment(version=3, deployment={"resources": [{"type": t} for t in self.types]})


@pytest.mark.parametrize(("types", "refresh", "forced"), [
    (["pulumi:pulumi:Stack", "kubernetes:core/v1:Namespace"], True, True),
    (["pulumi:pulumi:Stack", "pulumi:providers:kubernetes"], True, False),  # never deployed: conflicts stay errors
    (["kubernetes:core/v1:Namespace"], False, False),  # --no-refresh: nothing taken back
])
def test_a_deployed_stack_takes_back_fields_another_manager_changed(types, refresh, forced) -> None:
    stack = StateStack(types)
    engine._take_over_drift(stack, engine.Operation(refresh=refresh))
    assert (stack.workspace.env_vars.get(engine.PATCH_FORCE) == "true") is forced


def test_the_platform_is_a_target_for_reading_and_destroying_too(project_root) -> None:
    """A destroy of the platform was refused as "not a CBS code" once the file check came first."""
    for runs_program in (True, False):
        environment, cfg = stackops.load_target(project_root, "sandbox", "platform", runs_program)
        assert cfg is None and environment.name == "sandbox"


# --- what holds records ------------------------------------------------------------------------------

HELD = [engine.Protected("urn:pulumi:sandbox.gm0344::cgkit::x$kubernetes:core/v1:Namespace::gm0344-namespace",
                         "Namespace gm0344")]


def _destroy_engine(monkeypatch) -> list[list]:
    """FakeEngine with GM0344 deployed holding HELD; returns the `held` each destroy was given."""
    FakeEngine(existing={"sandbox.gm0344"}).install(monkeypatch)
    destroyed: list[list] = []
    monkeypatch.setattr(engine, "protected_resources", lambda stack: HELD)
    monkeypatch.setattr(engine, "destroy", lambda stack, op, held=(): destroyed.append(list(held)) or
                        SimpleNamespace(summary=SimpleNamespace(resource_changes={"delete": 3})))
    return destroyed


def test_destroy_of_a_tenant_that_holds_records_needs_its_code(project: Path, monkeypatch, capsys) -> None:
    destroyed = _destroy_engine(monkeypatch)
    assert main(["destroy", "--env", "sandbox", "GM0344", "--yes"]) != ExitStatus.OK
    printed = capsys.readouterr().err
    assert "refusing to destroy sandbox.gm0344: it holds records in Namespace gm0344; nothing was deleted" in printed
    assert "cgkit destroy --env sandbox GM0344 --allow-data-loss GM0344" in printed
    assert destroyed == []
    assert main(["destroy", "--env", "sandbox", "GM0344", "--allow-data-loss", "gm0344", "--yes"]) == ExitStatus.OK
    assert destroyed == [HELD], "the protection is lifted from exactly what the state holds"


def test_the_engine_refusing_a_protected_step_becomes_data_at_risk() -> None:
    """The engine's own words (pulumi 3.274, a replaced claim template) name the URN on one line and
    the protection on the next."""
    text = ('error: unable to replace resource "urn:pulumi:sandbox.gm0344::cgkit::cgkit:backing:Postgres'
            '$kubernetes:apps/v1:StatefulSet::gm0344-postgresql-statefulset"\n    as it is currently marked for '
            'protection. To unprotect the resource, remove the `protect` flag ...')
    held = engine._PROTECTED_STEP.findall(text)
    error = engine._data_at_risk("sandbox.gm0344", "preview", held)
    assert str(error) == ("preview of sandbox.gm0344 stopped: it would replace kubernetes:apps/v1:StatefulSet "
                          "gm0344-postgresql-statefulset, which holds records; nothing was changed")
    assert error.hint.endswith("cgkit up --env sandbox GM0344 --allow-data-loss GM0344")


# --- the stack operations API -------------------------------------------------------------------------


@pytest.mark.parametrize("verb, options, called", [
    (stackops.Verb.PREVIEW, stackops.RunOptions(), "preview"),
    (stackops.Verb.UP, stackops.RunOptions(skip_policy=True), "up"),
    (stackops.Verb.REFRESH, stackops.RunOptions(), "refresh"),
    (stackops.Verb.REFRESH, stackops.RunOptions(preview_only=True), "preview_refresh"),
    (stackops.Verb.DESTROY, stackops.RunOptions(allow_data_loss=True), "destroy"),
])
def test_run_is_the_one_dispatch_from_a_verb_to_the_engine(monkeypatch, verb, options, called) -> None:
    seen: list[tuple[str, engine.Operation]] = []
    summary = SimpleNamespace(resource_changes={"same": 2}, change_summary={"same": 2})

    def record(name):
        def call(stack, *args):
            op = next(a for a in args if isinstance(a, engine.Operation))
            seen.append((name, op))
            return engine.Outcome({"same": 2}) if name in ("preview", "up") else SimpleNamespace(
                summary=summary, change_summary=summary.change_summary)
        return call

    for name in ("preview", "up", "refresh", "preview_refresh", "destroy"):
        monkeypatch.setattr(engine, name, record(name))
    monkeypatch.setattr(engine, "data_held", lambda stack, allowed: [] if allowed else pytest.fail("not allowed"))
    outcome = stackops.run(verb, FakeStack("sandbox.gm0344"), None, print, options)
    assert [name for name, _ in seen] == [called] and outcome.changes == {"same": 2}
    assert seen[0][1].policies is not options.skip_policy and seen[0][1].refresh is options.refresh
