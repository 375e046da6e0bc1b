"""``cgkit render`` (a tenant's objects as YAML, like ``helm template``) and ``cgkit wiring``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml

from cgkit.cli.console import out
from cgkit.config import loader
from cgkit.project import find_root

#: What a redacted Secret value reads as.
REDACTED = "<redacted>"


#: Keys first in every printed object, as kubectl shows them.
_HEAD = ("apiVersion", "kind", "metadata")


def redacted(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` for printing: ``apiVersion``, ``kind``, ``metadata`` first, and every value of a
    Secret's ``data`` and ``stringData`` replaced by ``<redacted>``.

    The keys stay (a reader sees what a Secret holds, never the value). The values rendered under
    mocks are fake, but a redacted output is safe to paste anywhere even if that changes.
    """
    shown = {**{k: manifest[k] for k in _HEAD if k in manifest},
             **{k: v for k, v in manifest.items() if k not in _HEAD}}
    if manifest.get("kind") == "Secret":
        shown.update({field: {key: REDACTED for key in manifest[field]}
                      for field in ("data", "stringData") if manifest.get(field)})
    return shown


def render(target: Annotated[str, typer.Argument(help="A CBS code, e.g. GM0344.")],
           env: Annotated[str, typer.Option("--env", "-e", help="Environment name (a folder in environments/).")]
           ) -> None:
    """Print the tenant's Kubernetes objects as YAML (Secret values redacted), without a cluster."""
    from cgkit.render import render_municipality  # runs the program under mocks

    cfg = loader.load_municipality(find_root(), env, target)
    documents = [redacted(m) for m in render_municipality(cfg)]
    out.print(yaml.safe_dump_all(documents, sort_keys=False), end="", markup=False, highlight=False,
              soft_wrap=True)


def wiring() -> None:
    """Print which app talks to which in a tenant with every catalog app (Markdown table)."""
    from components.catalog import load_catalog
    from components.wiring import wiring_table

    out.print(wiring_table(load_catalog()), end="", markup=False, highlight=False, soft_wrap=True)
