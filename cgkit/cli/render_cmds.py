"""``cgkit wiring``: which app talks to which."""

from __future__ import annotations

from cgkit.cli.console import out


def wiring() -> None:
    """Print which app talks to which in a tenant with every catalog app (Markdown table)."""
    from components.catalog import load_catalog
    from components.wiring import wiring_table

    out.print(wiring_table(load_catalog()), end="", markup=False, highlight=False, soft_wrap=True)
