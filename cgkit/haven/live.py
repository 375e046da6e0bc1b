"""The Haven checks against an environment's live cluster: reach it, gather the facts, judge.

Used by `cgkit haven check` and by the Haven section of `cgkit policy report --haven`.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config

from cgkit import node_manifests
from cgkit.cluster import check_environment
from cgkit.config.model import EnvironmentFile
from cgkit.errors import CgkitError
from cgkit.haven import facts, report


class HavenCheckError(CgkitError):
    """The cluster refused a read the checks need (nothing was judged), or a result could not be
    written."""

    reference = "haven"


def judge_environment(environment: EnvironmentFile, root: Path) -> tuple[list[report.Result], str]:
    """Probe the cluster of ``environment``, gather its facts and judge every check; return the
    results (catalog order) and the API server's address. On the sandbox its real node is this host,
    so that node's kernel is inspected directly.

    Raises:
        SandboxError, ClusterUnreachableError, ClusterUnauthorizedError: as ``check_environment``.
        HavenCheckError: the API server refused a read the checks need (the kubeconfig is not admin).
    """
    kubeconfig = check_environment(environment, root)
    api = kube_config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None,
                                             context=environment.cluster.context)
    local_node = node_manifests.NODE_NAME if environment.cluster.sandbox else None
    try:
        found = facts.gather(api, local_node)
    except client.ApiException as refused:
        raise HavenCheckError(f"the cluster at {api.configuration.host} refused a read the Haven checks need: "
                              f"{refused.status} {refused.reason}",
                              hint="run the checks with a cluster-admin kubeconfig") from None
    return report.judge(found), api.configuration.host
