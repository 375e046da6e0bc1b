"""Pulumi programs: ``platform`` (once per environment) and ``municipality`` (one tenant)."""
