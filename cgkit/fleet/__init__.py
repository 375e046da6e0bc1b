"""The fleet: one operation (preview, up, refresh, destroy) over many municipality stacks.

``selection`` picks the municipalities and orders them into waves, ``scheduler`` runs them with a
bounded worker pool (one failing stack never stops the others; a wave over its failure budget stops
the rollout), ``report`` writes and reads a run's directory (report.json and one engine log per
stack), ``engine_runner`` is the per-stack operation through the Automation API, and ``view`` the
live progress and the summary table. The CLI is cgkit/cli/fleet_cmds.py.
"""
