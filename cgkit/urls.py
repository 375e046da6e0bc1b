"""Secrets in URLs: the one rule for every URL cgkit takes, and the one redactor for every URL it prints.

A URL cgkit takes is written down: in a committed environment file (``state.backend``,
``state.secrets_provider``, ``observability.otlp_endpoint``, ``auth.oidc.issuer``, which is copied into
every app's setup document), on a command line (``state migrate --to``), in a shell's environment
(``PULUMI_BACKEND_URL``). So a URL carries no credential, and the rule is an allow-list, not a guess
by name:

* no user information (``user:secret@``, or a token alone before ``@``), in the URL or in a URL that
  is the value of one of its parameters (an ``s3://`` ``endpoint=https://key:secret@host``);
* no query parameter that the engine does not itself read for that scheme (`PARAMETERS`, from
  gocloud.dev v0.46, which Pulumi's CLI opens these URLs with): an Azure SAS token (``sv=…&sig=…``),
  a pre-signed S3 query (``X-Amz-Signature=…``) or a Pulumi Cloud ``token=`` are no such parameter.
  A scheme not listed (``http``, ``https``) takes none;
* no fragment: no engine reads one, and ``#access_token=…`` is how OAuth hands out a token.

`redact` is what every message and every printed line shows of a URL: the user information becomes
``…@``, the value of every parameter not on the scheme's allow-list ``…``, the fragment ``#…``; an
allowed parameter keeps its value (``region=eu-west-1``), an allowed ``endpoint`` is itself redacted.
`redact_text` does that to every URL inside a free text (an error message, a line of the engine's
output); the error renderers (`cgkit.errors`) run it on everything they print.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

#: Parameters gocloud.dev's AWS config reads from a URL (aws.V2ConfigFromURLParams).
_AWS = frozenset({"region", "endpoint", "profile", "hostname_immutable", "dualstack", "fips",
                  "rate_limiter_capacity", "anonymous", "role", "request_checksum_calculation",
                  "response_checksum_validation", "awssdk"})
#: Parameters every gocloud.dev bucket URL takes (blob.OpenBucket: a key prefix, a single key).
_BLOB = frozenset({"prefix", "key"})
#: The query parameters the engine reads, per scheme; any other parameter is refused (module doc).
PARAMETERS: dict[str, frozenset[str]] = {
    "file": frozenset(),
    "s3": _AWS | _BLOB | {"ssetype", "kmskeyid", "accelerate", "use_path_style", "s3ForcePathStyle", "disable_https"},
    "azblob": _BLOB | {"domain", "protocol", "cdn", "localemu", "storage_account"},
    "gs": _BLOB | {"access_id", "private_key_path", "anonymous", "universe_domain"},
    "awskms": _AWS,  # and context_<name>: the KMS encryption context (not a secret; `allowed`)
    "azurekeyvault": frozenset({"algorithm"}),
    "gcpkms": frozenset({"additional_authenticated_data"}),
    "hashivault": frozenset({"engine"}),
}
#: Parameters whose value is itself a URL, redacted and checked like one.
_URL_VALUED = frozenset({"endpoint"})
#: A scheme as RFC 3986 spells it, then ``://``.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
#: A URL inside free text: a scheme, ``://``, then up to a blank or a quote.
_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
HIDDEN = "…"
#: A parameter name shown in a message; any other name may be part of a secret and is hidden too.
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,40}")
#: Where credentials go instead, said by every refusal.
ELSEWHERE = ("such a URL is written down (the committed environment file, a command line, a log), so give "
             "them to the engine in its environment (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
             "AZURE_STORAGE_KEY, GOOGLE_APPLICATION_CREDENTIALS, VAULT_TOKEN, ...) or a credentials file, "
             "never in the URL")


def scheme_of(url: str) -> str:
    """The scheme as written before ``://`` (``''`` when there is none); not lower-cased."""
    found = _SCHEME.match(url)
    return found.group(1) if found else ""


def allowed(scheme: str, parameter: str) -> bool:
    """Whether the engine reads ``parameter`` in a URL of ``scheme`` (`PARAMETERS`; exact case)."""
    if scheme == "awskms" and parameter.startswith("context_"):
        return True
    return parameter in PARAMETERS.get(scheme, frozenset())


def credentials(url: str) -> str | None:
    """What in ``url`` is (or may be) a credential, as a phrase for a message, or None.

    ``'user:secret@'`` for user information; ``"parameter(s) sig, sv"`` for parameters the engine does
    not read for the scheme (their values never shown); ``"user:secret@ in endpoint"`` for a URL-valued
    parameter that carries one. Never raises: an unparsable URL is judged on its text.
    """
    scheme = scheme_of(url)
    head, _, query = url.partition("?")
    if "@" in head or _port_not_a_number(head):  # wherever a / # or ? in a password would end the host
        return "user:secret@"
    pairs = parse_qsl(query.partition("#")[0], keep_blank_values=True)
    unknown = sorted({key if _PLAIN_KEY.fullmatch(key) and f"{key}=" in query else HIDDEN
                      for key, _ in pairs if not allowed(scheme, key)})
    if unknown:
        return f"parameter(s) {', '.join(unknown)}"
    for key, value in pairs:
        inner = credentials(value) if key in _URL_VALUED and "://" in value else None
        if inner:
            return f"{inner} in {key}"
    if "#" in url:  # no engine URL has one; an OAuth-style #access_token=... would be a credential
        return "a fragment (#…)"
    return None


def refuse_credentials(url: str, why: str = ELSEWHERE) -> None:
    """Raise ValueError when ``url`` carries a credential (`credentials`), naming what and showing only
    `redact`'s form of it; ``why`` says where credentials belong instead."""
    found = credentials(url)
    if not found:
        return
    shown = redact(url)
    if found.startswith("a fragment"):
        raise ValueError(f"'{shown}' has a fragment (#…), which no engine reads and which may hold a token "
                         f"(#access_token=…); remove it; {why}")
    if not found.startswith("parameter"):
        raise ValueError(f"'{shown}' carries credentials ({found}); {why}")
    scheme = scheme_of(url)
    valid = sorted(PARAMETERS.get(scheme, ()))
    reads = (f"reads only {', '.join(valid)} in {scheme}:// URLs" if valid
             else f"reads no parameter in {scheme}:// URLs")
    raise ValueError(f"'{shown}' has {found} that the engine does not read (it {reads}); cgkit refuses them "
                     f"and does not show their values, since such a parameter may be a credential (a signature, "
                     f"a token); {why}")


def redact(url: str) -> str:
    """``url`` as it may be printed (module doc): user information, the values of parameters the engine
    does not read for the scheme, and the fragment hidden. Never raises; text without a scheme is
    treated as a URL's rest (``user:secret@host?…#…``)."""
    if not isinstance(url, str):
        return HIDDEN
    scheme = scheme_of(url)
    start = f"{scheme}://" if scheme else ""
    head, mark, query = url.partition("?")
    if "@" in head:  # the user information, wherever a / or # in a password would end it for urlsplit
        head = f"{start}{HIDDEN}@{head.rsplit('@', 1)[1]}"
    elif _port_not_a_number(head):  # user:pass?word@host: what follows the colon may be a password
        return f"{start}{HIDDEN}"
    head, hash_mark, _ = head.partition("#")
    query, hash_in_query, _ = query.partition("#")
    hash_mark = hash_mark or hash_in_query
    shown = head + ("?" + "&".join(_shown_parameter(scheme, piece) for piece in query.split("&")) if query else "")
    return shown + (f"#{HIDDEN}" if hash_mark else "")


def _port_not_a_number(head: str) -> bool:
    """Whether the host part of ``head`` (the URL before ``?``) has a colon not followed by a port
    number: the start of ``user:password`` cut short by a ``?`` in the password."""
    authority = re.split(r"[/#]", head.split("://", 1)[-1], maxsplit=1)[0]
    if authority.startswith("["):  # an IPv6 address (with a zone), then :port; anything else may be a password
        return not re.fullmatch(r"\[[0-9A-Fa-f:.]*(%[A-Za-z0-9._~%-]*)?(\](:\d*)?)?", authority)
    if ":" not in authority:
        return False
    port = authority.split(":", 1)[1]  # host:port has one colon and digits (or nothing) after it
    return bool(port) and not port.isdigit()


def _shown_parameter(scheme: str, piece: str) -> str:
    """One ``key=value`` of a query as shown: the value kept only for a parameter the engine reads (a URL
    value redacted); the name kept only when it is a plain name followed by ``=`` (a bare ``?token`` or
    an encoded name may itself be the secret)."""
    raw_key, equals, _ = piece.partition("=")
    pairs = parse_qsl(piece, keep_blank_values=True)
    if not equals or not pairs or not _PLAIN_KEY.fullmatch(raw_key):
        return HIDDEN
    key, value = pairs[0]
    if not allowed(scheme, key):
        return f"{key}={HIDDEN}"
    return f"{key}={redact(value) if key in _URL_VALUED and '://' in value else value}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it replaced by `redact`'s form (an error message, an engine line)."""
    if "://" not in text:
        return text
    def one(found: re.Match) -> str:
        url = found.group(0)
        end = len(url.rstrip(".,;:)"))  # punctuation of the sentence around it
        return redact(url[:end]) + url[end:]
    return _IN_TEXT.sub(one, text)
