"""``cgkit haven check``: the Haven checks against an environment's live cluster.

Exit statuses (`ExitStatus`): OK when no check failed (checks that are not verifiable from here do
not fail the run: they are listed with the reason), FAILED (1) when a mandatory check failed or the
cluster could not be asked (one ``error:`` line naming the cause).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from kubernetes import client
from kubernetes import config as kube_config

from cgkit import node_manifests
from cgkit.cli.exit_codes import ExitStatus
from cgkit.cluster import check_environment
from cgkit.config import loader
from cgkit.errors import CgkitError
from cgkit.haven import facts, report
from cgkit.project import find_root


class Format(str, enum.Enum):
    """Output formats of ``haven check``."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


class HavenCheckError(CgkitError):
    """The cluster refused a read the checks need (nothing was judged), or the result could not be
    written to ``--out``."""

    reference = "haven"


haven_app = typer.Typer(help="Haven, VNG's standard for Common Ground clusters: its checks, live.",
                        no_args_is_help=True)


@haven_app.command()
def check(
    env: Annotated[str, typer.Option("--env", "-e", help="Environment whose cluster is checked (e.g. sandbox).")],
    output: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.TEXT,
    out: Annotated[Optional[Path], typer.Option(help="File to write the result to (default: stdout).")] = None,
) -> None:
    """Run every Haven check cgkit can establish against the environment's cluster: each passed,
    failed, or not verifiable here with the reason."""
    root = find_root()
    environment = loader.load_environment(root, env)
    kubeconfig = check_environment(environment, root)
    results, server = judge_cluster(kubeconfig, environment.cluster.context, sandbox=environment.cluster.sandbox)
    rendered = report.FORMATS[output.value](results, server)
    if out is None:
        typer.echo(rendered)
    else:
        try:
            out.write_text(rendered + "\n", encoding="utf-8")
        except OSError as e:
            raise HavenCheckError(f"{out}: cannot write the result: {e.strerror or e}",
                                  hint="name a writable file with --out") from None
        typer.echo(f"wrote {out}")
    raise typer.Exit(ExitStatus.FAILED if report.failed(results) else ExitStatus.OK)


def judge_cluster(kubeconfig: Path | None, context: str | None, sandbox: bool) -> tuple[list[report.Result], str]:
    """Gather the facts of the cluster behind ``kubeconfig`` and judge every check; return the
    results and the API server's address. On the sandbox, its real node is this host, so its kernel
    is inspected directly.

    Raises:
        HavenCheckError: the API server refused a read the checks need (the kubeconfig is not admin).
    """
    api = kube_config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
    try:
        found = facts.gather(api, node_manifests.NODE_NAME if sandbox else None)
    except client.ApiException as refused:
        raise HavenCheckError(f"the cluster at {api.configuration.host} refused a read the Haven checks need: "
                              f"{refused.status} {refused.reason}",
                              hint="run the checks with a cluster-admin kubeconfig") from None
    return report.judge(found), api.configuration.host
