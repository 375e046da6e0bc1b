"""``cgkit secrets rotate``: new values for a tenant's generated secrets, rolled out by the next ``up``.

``cgkit secrets rotate --env sandbox GM0344 --app openzaak --what db-password`` writes a new random
value for ``openzaak-db-password`` into the stack's config (encrypted; under the stack's lock) and
prints nothing of it. The next ``cgkit up`` (or ``fleet up``) then carries it to every consumer: the
app's Secret and the ``postgresql`` Secret change, a new provisioning Job (its name carries a digest
of the passwords, never a password) sets the role's password, and the app's pods roll (their
template's ``cgkit.io/secret-digest`` annotation changes). A ``secret-key`` rotation rolls the pods
only; Django sessions and password-reset links signed with the old key stop working.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cgkit import engine, secrets
from cgkit.cli.console import out
from cgkit.cli.stack_cmds import Env
from cgkit.stackops import StackNotDeployed, engine_settings
from cgkit.config import loader
from cgkit.conventions import stack_name
from cgkit.errors import InvalidArgumentError
from cgkit.gemeenten import lookup
from cgkit.project import find_root

secrets_app = typer.Typer(help="A tenant's generated secrets (database passwords, Django SECRET_KEYs).",
                          no_args_is_help=True)


@secrets_app.command("rotate")
def rotate(code: Annotated[str, typer.Argument(help="The municipality's CBS code (GM0344).")], env: Env,
           app: Annotated[str | None, typer.Option(help="Only this app (catalog key); default: every enabled app.")]
           = None,
           what: Annotated[str | None, typer.Option(help=f"Only this kind: {' | '.join(secrets.ROTATABLE)}; "
                                                    "default: both.")] = None) -> None:
    """Replace a deployed tenant's generated secrets with new ones; `cgkit up` rolls them out."""
    if code.lower() == "platform":
        raise InvalidArgumentError("the platform stack has no generated secrets to rotate",
                                   hint="give a municipality's CBS code, such as GM0344")
    code = lookup(code).code
    root = find_root()
    cfg = loader.load_municipality(root, env, code)
    names = secrets.rotation_names(cfg, app, what)
    name = stack_name(env, code)
    settings = engine_settings(root, loader.load_environment(root, env), cluster=False)
    with engine.stack_lock(root, name):
        stack = engine.existing_stack(settings, name)
        if stack is None:
            raise StackNotDeployed(f"stack {name} does not exist: it has no secrets to rotate",
                                   hint=f"cgkit up --env {env} {code} generates them")
        engine.replace_secrets(stack, names)
    out.print(f"rotated {len(names)} secret(s) of {name}: {', '.join(names)} (new values encrypted in the "
              f"stack config)\nroll them out: cgkit up --env {env} {code}", highlight=False, soft_wrap=True)
