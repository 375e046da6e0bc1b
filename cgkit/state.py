"""Where an environment's Pulumi state lives and how its stacks' secrets are encrypted.

An environment file's ``state:`` section names both (DESIGN.md decision 16)::

    state:
      backend: s3://cgkit-state?region=eu-west-1          # default: the project's file backend
      secrets_provider: awskms://alias/cgkit?region=eu-west-1  # default: passphrase

Both are Pulumi's own URLs, handed to the engine as they are (``PULUMI_BACKEND_URL``, ``pulumi stack
init --secrets-provider``); this module only refuses what the engine would fail on later, or what
would put a secret where it does not belong, and says what is valid. Sources: Pulumi's docs "State
and backends" (``file://``, ``s3://``, ``azblob://``, ``gs://``) and "Secrets" (``passphrase``,
``awskms://``, ``azurekeyvault://``, ``gcpkms://``, ``hashivault://``); the query parameters of an
``s3://`` URL are those gocloud.dev's s3blob and aws packages read (the CLI's v0.46 pin: any other
parameter makes the engine fail with "unknown query parameter").

Rules (each a ValueError with one sentence naming what is wrong and what is valid):

- a ``file://`` backend is a path; a relative one is taken from the project root;
- an object-store URL names its bucket and carries no credentials: `cgkit.urls` refuses user
  information and every query parameter the engine does not read for the scheme (an Azure SAS
  token, a pre-signed query), so nothing secret lands in a repository file; credentials come from
  the usual environment (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ...);
- an ``s3://`` endpoint outside this machine is ``https``: the state holds every object cgkit
  deployed, encrypted secrets among them, and must not cross a network in the clear.

Every message shows a URL only as `cgkit.urls.redact` gives it.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from cgkit.urls import PARAMETERS, redact, refuse_credentials

#: The backends Pulumi's CLI opens itself (a self-managed, "DIY" backend).
BACKEND_SCHEMES = ("file", "s3", "azblob", "gs")
#: Secrets providers other than the default passphrase.
SECRETS_SCHEMES = ("awskms", "azurekeyvault", "gcpkms", "hashivault")
DEFAULT_SECRETS_PROVIDER = "passphrase"
BACKEND_EXAMPLE = "s3://cgkit-state?region=eu-west-1 or file://.cgkit/state"
SECRETS_EXAMPLE = "passphrase, awskms://alias/cgkit?region=eu-west-1 or hashivault://cgkit"
#: Query parameters of an s3:// URL (gocloud.dev/aws V2ConfigFromURLParams and blob/s3blob).
S3_PARAMETERS = PARAMETERS["s3"]
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules, the strictest of the three


def check_backend(url: str) -> str:
    """Return ``url`` when the engine can open it as a state backend; raise ValueError otherwise."""
    parts = _split(url, BACKEND_SCHEMES, BACKEND_EXAMPLE)
    if parts.scheme == "file":
        if parts.query or parts.fragment or not (parts.netloc + parts.path):
            raise ValueError(f"'{redact(url)}' is not a file backend: write file://<path> (absolute, or relative to the "
                             "project root), e.g. file://.cgkit/state")
        return url
    if not _BUCKET.match(parts.hostname or ""):
        raise ValueError(f"'{redact(url)}' names no valid bucket: after {parts.scheme}:// comes the bucket name, 3 to 63 "
                         "lower-case letters, digits, dots or hyphens, e.g. s3://cgkit-state")
    if parts.scheme == "s3":
        _check_s3_query(url, parts.query)
    return url


def check_secrets_provider(provider: str) -> str:
    """Return ``provider`` when the engine can use it for a stack's secrets; raise ValueError otherwise."""
    if provider == DEFAULT_SECRETS_PROVIDER:
        return provider
    parts = _split(provider, SECRETS_SCHEMES, SECRETS_EXAMPLE, also=("passphrase",))
    if not (parts.netloc or parts.path.strip("/")):
        raise ValueError(f"'{redact(provider)}' names no key: after {parts.scheme}:// comes the key, e.g. {SECRETS_EXAMPLE}")
    return provider


def backend_url(url: str | None, root: Path) -> str:
    """The engine's ``PULUMI_BACKEND_URL`` for an environment's ``state.backend`` (None: the project's
    file backend ``<root>/.cgkit/state``); a relative ``file://`` path is made absolute from ``root``."""
    if url is None:
        return f"file://{root / '.cgkit' / 'state'}"
    if url.startswith("file://"):
        path = Path(url[len("file://"):]).expanduser()
        return f"file://{path if path.is_absolute() else root / path}"
    return url


def local_path(url: str) -> Path | None:
    """The directory of a ``file://`` backend URL (absolute, as `backend_url` returns it); None for an object store."""
    return Path(url[len("file://"):]) if url.startswith("file://") else None


def _split(url: str, schemes: tuple[str, ...], example: str, also: tuple[str, ...] = ()):
    """urlsplit ``url`` and check it carries no credentials (`cgkit.urls`) and its scheme is one of
    ``schemes``; every message shows the URL redacted."""
    if not isinstance(url, str) or url != url.strip() or not url:
        raise ValueError(f"'{redact(url)}' is empty or has surrounding blanks; e.g. {example}")
    refuse_credentials(url)  # first: whatever else is wrong, a credential is the worst of it
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as err:
        raise ValueError(f"'{redact(url)}' is not a URL ({_without(err, url)}); e.g. {example}") from None
    if "://" not in url or url.split("://", 1)[0] not in schemes:  # the engine reads the scheme as written
        valid = ", ".join([*also, *(f"{s}://" for s in schemes)])
        raise ValueError(f"'{redact(url)}' is not one of {valid}; e.g. {example}")
    return parts


def _without(err: ValueError, url: str) -> str:
    """urlsplit's reason, which may quote the part of ``url`` it refused, without that part."""
    return str(err).split(" as ", 1)[0]  # "Port could not be cast to integer value as '<the port>'"


def _check_s3_query(url: str, query: str) -> None:
    """Known parameters only, each once, and an endpoint that is https unless it is on this machine."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    keys = [key for key, _ in pairs]
    unknown = sorted(set(keys) - S3_PARAMETERS)
    if unknown:
        raise ValueError(f"'{redact(url)}' has unknown parameter(s) {', '.join(unknown)} (the engine would refuse them); "
                         f"valid: {', '.join(sorted(S3_PARAMETERS))}")
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"'{redact(url)}' gives {', '.join(twice)} more than once (the engine would take the first)")
    params = dict(pairs)
    endpoint = params.get("endpoint")
    plain = params.get("disable_https", "false").lower() in ("1", "t", "true")
    if endpoint is None:
        if plain:
            raise ValueError(f"'{redact(url)}' sets disable_https without an endpoint: AWS's own endpoints are https only")
        return
    try:
        target = urlsplit(endpoint)
        target.port  # noqa: B018
    except ValueError as err:
        raise ValueError(f"'{redact(url)}': endpoint '{redact(endpoint)}' is not a URL ({_without(err, endpoint)})") from None
    if target.scheme not in ("http", "https") or not target.hostname or target.path not in ("", "/"):
        raise ValueError(f"'{redact(url)}': endpoint '{redact(endpoint)}' is not http(s)://host[:port], e.g. "
                         "endpoint=https://s3.example.nl")
    if (target.scheme == "http" or plain) and not _on_this_machine(target.hostname):
        raise ValueError(f"'{redact(url)}': endpoint '{redact(endpoint)}' is plain http to another machine; the state holds every "
                         "deployed object, encrypted secrets among them: use https (only a store on this machine, "
                         "127.0.0.1 or localhost, may be http)")


def _on_this_machine(host: str) -> bool:
    """Whether ``host`` is the loopback name or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
