"""Stack operations as an API: open the stack of an environment and target, and run one verb on it.

The single-stack commands (cgkit/cli/stack_cmds.py), the fleet (cgkit/fleet/engine_runner.py) and
the tests call this module; none of them builds engine settings or dispatches on a verb itself.

    settings, stack = open_stack("sandbox", "GM0344", Verb.UP)
    outcome = run(Verb.UP, stack, settings, print, RunOptions())

``open_stack`` validates the target's config (nothing runs if it is invalid), probes the
environment's cluster, writes the stack's policy-pack config and opens the stack for the verb;
``run`` is the one dispatch from a verb to the engine (cgkit/engine.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cgkit import capacity, engine, policy_context
from cgkit.cluster import check_environment, environment_kubeconfig
from cgkit.config import loader
from cgkit.config.model import EnvironmentFile
from cgkit.conventions import stack_name
from cgkit.errors import CgkitError, ConfigError, InvalidArgumentError
from cgkit.gemeenten import lookup
from cgkit.project import find_root, state_dir
from cgkit.secrets import BACKUP_ACCESS_KEY_ID, PROVIDED_BECAUSE, provided_secret_names, secret_names


class Verb(str, Enum):
    """What is done to a stack. ``preview`` and ``up`` run the program (so they create a new stack and
    its secrets; ``preview`` says so); ``refresh`` and ``destroy`` only read or remove what the state
    holds and never create a stack."""

    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"
    DESTROY = "destroy"

    @property
    def runs_program(self) -> bool:
        """Whether the Pulumi program runs (and needs the stack's secrets)."""
        return self in (Verb.PREVIEW, Verb.UP)


@dataclass(frozen=True)
class RunOptions:
    """How a verb runs: ``skip_policy`` (preview/up without the policy pack), ``refresh`` (preview/up
    read the live objects back first), ``preview_only`` (refresh: only show drift),
    ``allow_data_loss`` (destroy deletes what holds records: namespace, databases, media)."""

    skip_policy: bool = False
    refresh: bool = True
    preview_only: bool = False
    allow_data_loss: bool = False


#: What ``open_stack`` says (after the stack's name) when a preview creates a stack never deployed.
PREVIEW_CREATED = ("was never deployed: created it (empty) so the program can be previewed with its secrets; "
                   "`cgkit up` will use the same ones")


class StackNotDeployed(CgkitError):
    """A command that reads a stack's state found no such stack (never deployed); nothing was created."""

    reference = "stack-not-deployed"


class SecretNotSet(CgkitError):
    """A secret only a person can provide (an OIDC client secret) is not in the stack config."""

    reference = "secret-not-set"


def check_target(target: str) -> None:
    """Refuse a target that is neither 'platform' nor a CBS code of the list.

    Raises:
        InvalidArgumentError: as said, with a hint.
    """
    if target.lower() != "platform":
        try:
            lookup(target)
        except CgkitError as unknown:
            raise InvalidArgumentError(f"TARGET '{target}' is neither 'platform' nor a municipality: {unknown}",
                                       hint="give a CBS code such as GM0344, or 'platform'") from None


def load_target(root: Path, env: str, target: str, runs_program: bool = True):
    """Validate ``target`` and its config; return the environment and the municipality config (None for
    the platform, and for an offboarded municipality whose stack is read or destroyed).

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid, or (``runs_program``) the tenant does not fit its size.
    """
    check_target(target)
    environment = loader.load_environment(root, env)
    if target.lower() == "platform":
        return environment, None
    if not runs_program and not loader.municipality_file(root, env, target).exists():
        return environment, None  # offboarded: its stack can still be read and destroyed
    cfg = loader.load_municipality(root, env, target)
    if runs_program and (short := capacity.capacity_issues(root, cfg)):
        raise ConfigError(short)
    return environment, cfg


def open_stack(env: str, target: str, verb: Verb = Verb.UP, notify: Callable[[str], object] | None = None,
               create: bool = True) -> tuple[engine.EngineSettings, "engine.auto.Stack"]:
    """Validate ``target``'s config, probe its cluster, then open its stack for ``verb``.

    ``up`` creates the stack when it is new and generates its missing secrets; ``preview`` does the
    same (the program reads the secrets) and says so through ``notify`` when it creates a stack that
    was never deployed. ``refresh`` and ``destroy`` open only an existing stack and generate nothing;
    a municipality whose file is gone can still be destroyed (offboarding works from the stack's
    state). Secrets only a person can provide (``secrets.provided_secret_names``, an OIDC client
    secret) must be there already for ``up`` and ``preview``. The stack is created and its secrets
    generated under ``engine.stack_lock``, so commands opening one new stack at once create it and
    its secrets once. The policy pack gets a per-stack config (the municipality's domain,
    registries, waivers, the environment's enforcement) in ``.cgkit/policy/<stack>.json``.
    ``notify`` receives one-line notes (secrets generated); default: ignored. Without ``create`` (a
    fleet runner pod, whose files die with it) a new stack or a missing secret is an error instead:
    the stack config, with the secrets' encryption salt, must come from the machine that keeps it.

    Raises:
        InvalidArgumentError: ``target`` is neither 'platform' nor a CBS code of the list.
        ConfigError: the config is invalid (before any engine call).
        ClusterUnreachableError, ClusterUnauthorizedError: the environment's API server did not answer
            or refused us (before any engine call).
        StackNotDeployed: ``refresh`` or ``destroy`` of a stack that does not exist.
        SecretNotSet: the stack lacks a secret someone must set by hand.
        EngineError: the engine could not select or create the stack.
    """
    verb = Verb(verb)
    root = find_root()
    environment, cfg = load_target(root, env, target, verb.runs_program)
    name = stack_name(env, target)
    provided: list[str] = []
    if cfg is None:
        names, ctx, waivers = [], policy_context.platform_context(environment), []
    else:
        names, ctx, waivers = secret_names(cfg), policy_context.context_of(cfg), cfg.waivers
        provided = provided_secret_names(cfg) if verb.runs_program else []
    pack_config = policy_context.write_pack_config(ctx, waivers, state_dir(root) / "policy" / f"{name}.json",
                                                   environment.policy, root=root)
    settings = engine_settings(root, environment, pack_config)
    say = notify or (lambda _line: None)
    with engine.stack_lock(root, name):
        stack = engine.existing_stack(settings, name)
        if stack is None and not create:
            raise StackNotDeployed(f"stack {name} has no stack config here and a runner pod creates none (it would "
                                   "be lost with the pod)", hint=f"open it first where its config lives: "
                                   f"cgkit preview --env {env} {target}")
        if stack is None and not verb.runs_program:
            raise StackNotDeployed(f"stack {name} does not exist: it was never deployed (or was forgotten); "
                                   f"there is nothing to {verb.value}",
                                   hint=f"deploy it first: cgkit up --env {env} {target}")
        if stack is None:
            stack = engine.select_stack(settings, name)
            if verb is Verb.PREVIEW:
                say(f"stack {name} {PREVIEW_CREATED}")
        missing = engine.missing_config(stack, provided)
        if missing:
            because = "; ".join(dict.fromkeys(PROVIDED_BECAUSE[m] for m in missing))
            grant = (f"cgkit backup grant --env {env} {target} (the sandbox's store), or "
                     if BACKUP_ACCESS_KEY_ID in missing else "")
            raise SecretNotSet(f"stack {name} has no {', '.join(missing)}: {because}",
                               hint=grant + " ; ".join(f"eval \"$(cgkit env --env {env})\" && pulumi config set "
                                                       f"--secret cgkit:{m} <value> -s {name}" for m in missing))
        if not create and (absent := engine.missing_config(stack, names if verb.runs_program else [])):
            raise SecretNotSet(f"stack {name} lacks {', '.join(absent)} and a runner pod generates none (they would "
                               "be lost with the pod)", hint=f"generate them first: cgkit preview --env {env} {target}")
        created = engine.ensure_secrets(stack, names) if verb.runs_program else []
    if created:
        say(f"generated {len(created)} secret(s) into the stack config (encrypted)"
            + (" because the program reads them" if verb is Verb.PREVIEW else ""))
    return settings, stack


def run(verb: Verb, stack: "engine.auto.Stack", settings: engine.EngineSettings, on_output: Callable[[str], object],
        options: RunOptions = RunOptions()) -> engine.Outcome:
    """Run ``verb`` on an opened stack; return the engine's change counts (op -> count), the drift the
    refresh before a preview or up found, and (up) the stack's outputs.

    Raises:
        DataAtRiskError: a destroy of a stack that holds records without ``options.allow_data_loss``,
            or a preview/up that would delete or replace one (nothing changed).
        PolicyViolationError, StackLockedError, EngineError: the engine failed.
    """
    op = engine.Operation(on_output=on_output, policies=not options.skip_policy, refresh=options.refresh)
    if verb is Verb.PREVIEW:
        return engine.preview(stack, settings, op)
    if verb is Verb.UP:
        return engine.up(stack, settings, op)
    if verb is Verb.REFRESH and options.preview_only:
        return engine.Outcome(dict(engine.preview_refresh(stack, op).change_summary or {}))
    if verb is Verb.REFRESH:
        return engine.Outcome(dict(engine.refresh(stack, op).summary.resource_changes or {}))
    held = engine.data_held(stack, options.allow_data_loss)
    return engine.Outcome(dict(engine.destroy(stack, op, held).summary.resource_changes or {}))


def engine_settings(root: Path, environment: EnvironmentFile, pack_config: Path | None = None,
                    probe: bool = True, cluster: bool = True) -> engine.EngineSettings:
    """The one place engine settings are built: the environment's kubeconfig (resolved once, by
    ``cluster.environment_kubeconfig``; its API server asked first when ``probe``), its state backend
    and secrets provider (the ``state:`` section) and, with a ``pack_config``, the project's policy
    packs with it. Without ``cluster`` (state operations: migrate, unlock, config) no kubeconfig is
    resolved and nothing is asked of the cluster.

    Raises:
        SandboxError: ``cluster`` and a sandbox environment while the sandbox does not exist.
        ClusterUnreachableError, ClusterUnauthorizedError: ``probe`` and the API server did not answer
            or refused us.
    """
    if not cluster:
        kubeconfig = None
    elif probe:
        kubeconfig = check_environment(environment, root)
    else:
        kubeconfig = environment_kubeconfig(environment, root)
    packs = policy_packs(root) if pack_config else []
    return engine.EngineSettings(root=root, kubeconfig=kubeconfig, policy_packs=packs,
                                 policy_pack_configs=[pack_config] if packs else [],
                                 backend_url=environment.state.backend,
                                 secrets_provider=environment.state.secrets_provider)


def policy_packs(root: Path) -> list[Path]:
    """The policy pack folders of the project (``policies/`` when it holds a PulumiPolicy.yaml)."""
    pack = root / "policies"
    return [pack] if (pack / "PulumiPolicy.yaml").is_file() else []
