"""Is the environment's cluster there, and does it let us in? Asked before any engine run.

Without this, a stack whose cluster is unreachable previews as "no changes": the engine compares
the program with the stack's state and, when nothing changed, never calls the cluster. So every
stack command first asks the API server itself, with the kubeconfig and context the environment's
provider uses (``environment_kubeconfig``, the one place that resolves it; None = the ambient
kubeconfig, as kubectl finds it): one ``list namespaces`` (limit 1), which needs the address, valid credentials and the
cluster-wide read every tenant stack needs anyway (it creates its Namespace).
"""

from __future__ import annotations

import os
from pathlib import Path

import urllib3
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from cgkit.config.model import EnvironmentFile
from cgkit.config.yamlsource import CONFIG_LIMITS, check_bounds, read_text
from cgkit.errors import CgkitError, ConfigError
from cgkit.sandbox import kubeconfig_path

#: Set to 1 in the fleet's runner pods (cgkit/fleet/in_cluster.py): the cluster is the pod's own.
IN_CLUSTER = "CGKIT_IN_CLUSTER"
#: Seconds to wait for the API server to accept the connection, then for its answer.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0


class ClusterUnreachableError(CgkitError):
    """The environment's API server did not answer (down, wrong address, network); nothing ran."""

    reference = "cluster-unreachable"


class ClusterUnauthorizedError(CgkitError):
    """The API server refused the kubeconfig's credentials (401) or their rights (403); nothing ran."""

    reference = "cluster-unauthorized"


def environment_kubeconfig(environment: EnvironmentFile, root: Path | None = None) -> Path | None:
    """Return the kubeconfig an environment's cluster is reached with: None inside a fleet runner
    pod (``$CGKIT_IN_CLUSTER`` = 1: its ServiceAccount, as client-go and the Kubernetes provider find
    it in the pod), else the sandbox's when ``cluster.sandbox`` is set, else ``cluster.kubeconfig``,
    else None (the ambient kubeconfig).

    Raises:
        SandboxError: a sandbox environment while the sandbox does not exist.
    """
    if os.environ.get(IN_CLUSTER) == "1":
        return None
    if environment.cluster.sandbox:
        return kubeconfig_path(root)
    return Path(environment.cluster.kubeconfig) if environment.cluster.kubeconfig else None


def check_environment(environment: EnvironmentFile, root: Path) -> Path | None:
    """Probe the cluster of ``environment`` (``check_cluster`` with its kubeconfig and context);
    return that kubeconfig (None = the ambient one).

    Raises:
        SandboxError: a sandbox environment while the sandbox does not exist.
        ClusterUnreachableError, ClusterUnauthorizedError: as ``check_cluster``.
    """
    kubeconfig = environment_kubeconfig(environment, root)
    check_cluster(kubeconfig, environment.cluster.context, sandbox=environment.cluster.sandbox)
    return kubeconfig


def check_cluster(kubeconfig: Path | None, context: str | None = None, sandbox: bool = False) -> str:
    """Return the API server's address once it answered an authenticated, authorised request.

    Args:
        kubeconfig: the kubeconfig file of the environment, or None for the ambient one
            (``$KUBECONFIG``, else ``~/.kube/config``).
        context: the context in it to use; None = its current context.
        sandbox: the environment is the local sandbox (the hints then name `cgkit sandbox up`).

    Raises:
        ClusterUnreachableError: no kubeconfig to read, or the API server did not answer in time.
        ClusterUnauthorizedError: the API server answered 401 (credentials rejected) or 403 (no
            right to list namespaces).
    """
    configuration = _configuration(kubeconfig, context, sandbox)
    server = configuration.host
    start = "start it: cgkit sandbox up" if sandbox else "check the address, the VPN or the cluster's status"
    try:
        with client.ApiClient(configuration) as api:
            client.CoreV1Api(api).list_namespace(limit=1, _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except ApiException as refused:
        if refused.status == 401:
            raise ClusterUnauthorizedError(
                f"the cluster at {server} rejected the credentials of {_source(kubeconfig)} (401 Unauthorized)",
                hint=("the sandbox's credentials changed: cgkit sandbox up writes them anew" if sandbox else
                      "renew the token or certificate in that kubeconfig (or log in again)")) from None
        if refused.status == 403:
            raise ClusterUnauthorizedError(
                f"the cluster at {server} lets {_source(kubeconfig)} in but not list namespaces (403 Forbidden)",
                hint="deploying tenants needs cluster-wide rights: use the platform team's kubeconfig") from None
        raise ClusterUnreachableError(f"the cluster at {server} answered {refused.status} {refused.reason}",
                                      hint=start) from None
    except (urllib3.exceptions.HTTPError, OSError) as down:
        raise ClusterUnreachableError(f"the cluster at {server} did not answer: {_reason(down)}",
                                      hint=start) from None
    return server


def api_client(environment: EnvironmentFile, root: Path | None = None) -> client.ApiClient:
    """A Kubernetes API client for ``environment``'s cluster, reached as the engine reaches it (its
    kubeconfig and context; in a pod without one, the pod's service account).

    Raises:
        ClusterUnreachableError: the kubeconfig is missing or unusable.
    """
    cluster = environment.cluster
    return client.ApiClient(_configuration(environment_kubeconfig(environment, root), cluster.context,
                                           cluster.sandbox))


def _configuration(kubeconfig: Path | None, context: str | None, sandbox: bool) -> client.Configuration:
    """Load the client configuration from the kubeconfig (no retries: one failed try is the answer)."""
    configuration = client.Configuration()
    if kubeconfig is not None and not os.path.lexists(kubeconfig):
        raise ClusterUnreachableError(f"the kubeconfig {kubeconfig} does not exist",
                                      hint="start the sandbox: cgkit sandbox up" if sandbox else
                                      "fix cluster.kubeconfig in the environment file")
    if kubeconfig is not None:
        _check_kubeconfig(Path(kubeconfig))
    try:
        kube_config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None, context=context,
                                     client_configuration=configuration, persist_config=False)
    except (ConfigException, OSError, TypeError, ValueError, yaml.YAMLError) as unreadable:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            raise ClusterUnreachableError(f"no usable kubeconfig in {_source(kubeconfig)}: {unreadable}",
                                          hint="set cluster.kubeconfig (and cluster.context) in the environment "
                                          "file, or KUBECONFIG") from None
    configuration.retries = False
    return configuration


def _check_kubeconfig(kubeconfig: Path) -> None:
    """Read ``kubeconfig`` through cgkit's input boundary (a regular file, bounded, YAML, a mapping)
    before the Kubernetes client does, which would block on a FIFO and fail with a bare YAML error.

    Raises:
        ClusterUnreachableError: naming the file and what is wrong with it.
    """
    hint = "fix cluster.kubeconfig in the environment file, or the file it names"
    try:
        text = read_text(kubeconfig, str(kubeconfig))
        check_bounds(text, str(kubeconfig), CONFIG_LIMITS)
        document = yaml.safe_load(text)
    except ConfigError as bad:
        raise ClusterUnreachableError(f"the kubeconfig {bad.render()}", hint=hint) from None
    except yaml.YAMLError as bad:
        mark = getattr(bad, "problem_mark", None)
        raise ClusterUnreachableError(f"the kubeconfig {kubeconfig}{f':{mark.line + 1}' if mark else ''}: not YAML "
                                      f"({getattr(bad, 'problem', None) or 'invalid'})", hint=hint) from None
    if not isinstance(document, dict):  # what a mapping lacks, the client says ("no usable kubeconfig")
        raise ClusterUnreachableError(f"the kubeconfig {kubeconfig}: not a kubeconfig (a mapping with clusters, "
                                      "users and contexts)", hint=hint)


def _source(kubeconfig: Path | None) -> str:
    return str(kubeconfig) if kubeconfig else f"the ambient kubeconfig ({os.environ.get('KUBECONFIG', '~/.kube/config')})"


def _reason(error: BaseException) -> str:
    """The cause of a connection failure as one line, without urllib3's ``<... object at 0x...>:`` prefix."""
    return str(getattr(error, "reason", None) or error).split(">: ", 1)[-1]
