"""Pulumi entry point (Pulumi.yaml ``main: stacks/``): the stack name picks the program.

``<env>.platform`` runs stacks/platform.py, ``<env>.<gm-code>`` (e.g. ``sandbox.gm0344``) runs
stacks/municipality.py with the config loaded from environments/<env>/.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # Pulumi runs this directory as a script: make the project importable
    sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402

from cgkit.config.loader import load_environment, load_municipality  # noqa: E402
from cgkit.errors import CgkitError  # noqa: E402


def main(stack: str) -> None:
    env, sep, target = stack.partition(".")
    if not sep or not env or not target:
        raise SystemExit(
            f"cgkit: stack name {stack!r} is not '<env>.platform' or '<env>.<gm-code>' "
            "(e.g. 'sandbox.platform', 'sandbox.gm0344'); select a stack with `pulumi stack select`."
        )
    if target == "platform":
        from stacks import platform

        platform.deploy(load_environment(ROOT, env))
    elif target.startswith("gm") and target[2:].isdigit() and len(target) == 6:
        from stacks import municipality

        municipality.deploy(load_municipality(ROOT, env, target))
    else:
        raise SystemExit(
            f"cgkit: stack {stack!r}: {target!r} is neither 'platform' nor a CBS code like 'gm0344'."
        )


try:
    main(pulumi.get_stack())
except CgkitError as err:  # invalid config: say which file and line, without a traceback
    raise SystemExit(f"cgkit: stack {pulumi.get_stack()!r}:\n{err.render()}") from None
