"""The ``cgkit`` command: the Typer app and the one boundary that turns errors into exit codes."""

from __future__ import annotations

import os
import signal
import sys

import typer

from cgkit.cli import config_cmds, doctor, render_cmds, sandbox, stack_cmds
from cgkit.cli.secrets_cmds import secrets_app
from cgkit.cli.backup_cmds import backup_app, restore
from cgkit.cli.offboard_cmds import offboard_cmd
from cgkit.cli.state_cmds import state_app
from cgkit.cli.fleet_cmds import fleet_app
from cgkit.cli.haven_cmds import haven_app
from cgkit.cli.policy import policy_app
from cgkit.cli.console import err
from cgkit.cli.exit_codes import ExitStatus
from cgkit.errors import CgkitError, EngineError, shown

app = typer.Typer(
    name="cgkit",
    help="Common Ground tenants for every Dutch municipality, from one config file each.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("onboard")(config_cmds.onboard)
app.command("validate")(config_cmds.validate)
app.command("schema")(config_cmds.write_schema)
app.command("env")(stack_cmds.shell_env)
app.command("render")(render_cmds.render)
app.command("wiring")(render_cmds.wiring)
app.command("doctor")(doctor.doctor)
app.add_typer(doctor.toolchain_app, name="toolchain")
app.add_typer(sandbox.sandbox_app, name="sandbox")
for _verb in ("preview", "up", "refresh", "destroy"):
    app.command(_verb)(getattr(stack_cmds, _verb))
app.add_typer(policy_app, name="policy")
app.add_typer(fleet_app, name="fleet")
app.add_typer(secrets_app, name="secrets")
app.add_typer(haven_app, name="haven")
app.add_typer(state_app, name="state")
app.add_typer(backup_app, name="backup")
app.command("restore")(restore)
app.command("offboard")(offboard_cmd)


def main(argv: list[str] | None = None) -> int:
    """Run cgkit; return its ExitStatus. Expected errors print one message (no traceback).

    SIGTERM (a CI timeout, a service manager) is handled like Ctrl-C, so a running engine
    operation is stopped cleanly instead of being orphaned with the stack locked.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = app(args=argv, standalone_mode=False)
    except CgkitError as error:
        err.print(error.render(), markup=False, highlight=False, soft_wrap=True)
        return ExitStatus.ENGINE if isinstance(error, EngineError) else ExitStatus.FAILED
    except typer.Exit as done:
        return done.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return ExitStatus.INTERRUPTED
    except Exception as usage:  # click's usage errors carry their own exit code and message
        if hasattr(usage, "exit_code") and hasattr(usage, "show"):
            usage.show()
            return usage.exit_code
        return _unexpected(usage)
    return code if isinstance(code, int) else ExitStatus.OK


def _unexpected(error: Exception) -> int:
    """Report an error no command anticipated in one line, never a traceback (``CGKIT_DEBUG=1`` shows it).

    An OSError names the file and the system's reason (a read-only checkout, a full disk); anything
    else is a bug in cgkit and says so, with the way to see the details.
    """
    if os.environ.get("CGKIT_DEBUG"):
        raise error
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        err.print(shown(f"error: {where}{error.strerror or error}"), markup=False, highlight=False, soft_wrap=True)
        return ExitStatus.FAILED
    err.print(f"internal error: {type(error).__name__}: {shown(str(error))}; this is a bug in cgkit, please report it "
              "(CGKIT_DEBUG=1 shows the traceback)", markup=False, highlight=False, soft_wrap=True)
    return ExitStatus.FAILED


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
