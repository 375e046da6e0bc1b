"""Property-based fuzzing (Hypothesis) of the kinds of input cgkit reads: municipality files,
environment files, manifests, and the URL-taking fields of both files (``state.backend``,
``state.secrets_provider``, ``observability.otlp_endpoint``, ``backups.endpoint``,
``auth.oidc.issuer``) and ``state migrate --to``. Whatever the input, the command answers: no
exception escapes (no traceback, no "internal error"), every error line names the file, and the exit
status is 0 or 1 as the output says. A privileged pod wrapped in Lists of any depth is always
caught, and a secret put in a URL's user information, a parameter the engine does not read or the
fragment is never printed back.

The normal run tries ``CGKIT_FUZZ_EXAMPLES`` (default 25) inputs per property; benchmarks/fuzz.py runs
the same properties with a large budget and records the result.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgkit import capacity as capacity_check
from cgkit.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("CGKIT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 100, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
MUNICIPALITY = "environments/sandbox/municipalities/gm0344.yaml"
ENVIRONMENT = "environments/sandbox/environment.yaml"

# ---------------------------------------------------------------------------------------- strategies

#: Words cgkit and Kubernetes give meaning to, so generated input reaches past the first check.
WORDS = ["code", "domain", "name", "size", "apps", "database", "access", "waivers", "admins", "viewers", "mode",
         "host", "port", "sslmode", "storage", "enabled", "replicas", "rule", "reason", "approved_by", "expires",
         "openzaak", "objecten", "in-cluster", "external", "GM0344", "GM0363", "system:authenticated", "S", "XL",
         "waves", "municipalities", "rest", "canary", "max_failure_rate", "ingress", "class_name", "controller",
         "controller_namespace", "storage_class", "images", "allowed_registries", "defaults", "cluster", "sandbox",
         "apiVersion", "kind", "metadata", "spec", "items", "List", "Pod", "Deployment", "RoleBinding", "ConfigMap",
         "containers", "securityContext", "privileged", "hostNetwork", "template", "subjects", "roleRef", "data",
         "namespace", "labels", "env", "value", "image", "volumes", "hostPath", "v1", "apps/v1", "gm0344"]
word = st.sampled_from(WORDS)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                   st.text(max_size=30), word, st.dates().map(str))
key = st.one_of(word, word, st.text(max_size=12), st.integers(-5, 5), st.booleans())
value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                     st.dictionaries(key, inner, max_size=6)), max_leaves=40)
#: YAML-specific traps that dumped data never contains.
TRAPS = st.sampled_from(["\t", "&a [*a]", "*undefined", "? [a, b]\n: c", "---\n", "!!python/object:os.system x",
                         "0344", "no", "\x00", "\ufeff", "%YAML 9.9\n", "{", "]", "- - - -", "&x", "!!binary @@",
                         "2026-02-30", ": :", "<<: *m", "'unterminated", "\u2028", "\x85", "!!set {a}"])


def yaml_text(base: dict) -> st.SearchStrategy[str]:
    """Text derived from ``base``: with fields replaced by random values, cut, spliced with traps, or raw."""
    mutated = st.builds(lambda changes, drop: {**{k: v for k, v in base.items() if k not in drop}, **changes},
                        st.dictionaries(st.sampled_from(sorted(base) + WORDS), value, max_size=4),
                        st.sets(st.sampled_from(sorted(base)), max_size=3))
    dumped = mutated.map(lambda d: yaml.safe_dump(d, sort_keys=False, allow_unicode=True))
    spliced = st.builds(lambda text, trap, at: text[:at % (len(text) + 1)] + trap + text[at % (len(text) + 1):],
                        dumped, TRAPS, st.integers(0, 10_000))
    return st.one_of(dumped, dumped, spliced, spliced, st.text(max_size=300),
                     st.binary(max_size=300).map(lambda b: b.decode("latin-1")))


# ------------------------------------------------------------------------------------------ the runs

class Project:
    """One scratch project for a whole property (Hypothesis runs many examples per test call)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="cgkit-fuzz-"))
        shutil.copy(ROOT / "Pulumi.yaml", self.root / "Pulumi.yaml")
        (self.root / "environments/sandbox/municipalities").mkdir(parents=True)
        text = (ROOT / ENVIRONMENT).read_text()
        self.environment = text[:text.index("\nwaves:")] + "\n"
        (self.root / ENVIRONMENT).write_text(self.environment)

    def run(self, argv: list[str], files: dict[str, str], capsys) -> tuple[int, str]:
        for name, text in files.items():
            (self.root / name).write_bytes(text.encode("utf-8", errors="surrogatepass"))
        old = os.getcwd()
        os.chdir(self.root)
        try:
            status = main(argv)
        finally:
            os.chdir(old)
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def assert_answered(status: int, output: str, file: str, ok_words: str) -> None:
    """The properties every run must have (module doc)."""
    assert "Traceback" not in output and "internal error" not in output, output
    assert status in (0, 1), (status, output)
    lines = [line for line in output.splitlines() if line.strip()]
    if status == 0:
        assert ok_words in output, output
        return
    errors = [line for line in lines if not line.endswith("file(s)") and not line.startswith("hint:")
              and not (line.startswith(("environments/", "error: ")) and (file in line or "environments/" in line))
              and not line.startswith(f"{file}: ")]
    assert not errors, f"lines that name no file: {errors}\n{output}"


def fuzz(name: str, strategy: st.SearchStrategy, body) -> None:
    """Run ``body(project, example)`` on ``EXAMPLES`` examples of ``strategy`` in one scratch project.

    validate's capacity check (rendering the program under mocks, ~2 CPU-s for a file that sets
    replicas; not input handling) is left out. With ``CGKIT_FUZZ_REPORT`` set, appends a JSON line with the
    number of examples that passed and the seconds taken to that file every 500 examples and at the
    end (benchmarks/fuzz.py reads it).
    """
    project, original, count = Project(), capacity_check.capacity_issues, [0]
    capacity_check.capacity_issues = lambda root, cfg: []

    start = time.monotonic()

    def record(final: bool) -> None:
        if os.environ.get("CGKIT_FUZZ_REPORT"):
            with open(os.environ["CGKIT_FUZZ_REPORT"], "a", encoding="utf-8") as report:
                report.write(json.dumps({"property": name, "examples": count[0], "final": final,
                                         "seconds": round(time.monotonic() - start, 1)}) + "\n")

    @FUZZ
    @given(strategy)
    def check(example) -> None:
        body(project, example)
        count[0] += 1  # counted once answered as the property demands
        if count[0] % 500 == 0:
            record(final=False)

    try:
        check()
    finally:
        capacity_check.capacity_issues = original
        project.close()
        record(final=True)


MUNICIPALITY_BASE = {"code": "GM0344", "domain": "utrecht.sandbox.cgkit.test", "size": "L",
                     "apps": {"opennotificaties": {"replicas": 2}, "objecten": {"enabled": False}},
                     "database": {"mode": "external", "host": "db.utrecht.nl", "port": 5432, "sslmode": "require"},
                     "access": {"admins": ["utrecht-platform-admins"], "viewers": ["utrecht-auditors"]},
                     "waivers": [{"rule": "CGK-POD-011", "reason": "the images write to their root fs",
                                  "approved_by": "ciso", "expires": "2099-01-01"}]}


def test_fuzz_municipality_files(capsys) -> None:
    def body(project: Project, text: str) -> None:
        status, output = project.run(["validate"], {MUNICIPALITY: text}, capsys)
        assert_answered(status, output, MUNICIPALITY, "file(s) valid")

    fuzz("municipality_files", yaml_text(MUNICIPALITY_BASE), body)


ENVIRONMENT_BASE = {**yaml.safe_load((ROOT / ENVIRONMENT).read_text())}


def test_fuzz_environment_files(capsys) -> None:
    def body(project: Project, text: str) -> None:
        (project.root / MUNICIPALITY).write_text("code: GM0344\ndomain: utrecht.nl\n")
        status, output = project.run(["validate"], {ENVIRONMENT: text}, capsys)
        assert_answered(status, output, ENVIRONMENT, "file(s) valid")

    fuzz("environment_files", yaml_text(ENVIRONMENT_BASE), body)


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "gm0344"},
       "spec": {"hostNetwork": True, "containers": [{"name": "web", "image": "docker.io/nginx:1.27",
                                                      "securityContext": {"privileged": True}}]}}
BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": "admins", "namespace": "gm0344"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
           "subjects": [{"kind": "Group", "name": "utrecht-admins"}]}


def _nested(obj: dict, depth: int) -> dict:
    for _ in range(depth):
        obj = {"apiVersion": "v1", "kind": "List", "items": [obj]}
    return obj


def manifests_text() -> st.SearchStrategy[str]:
    """Streams of documents derived from a Pod and a RoleBinding, mutated, nested in Lists, or raw."""
    docs = st.one_of(yaml_text(POD), yaml_text(BINDING),
                     st.builds(lambda d, n: yaml.safe_dump(_nested(d, n)), st.sampled_from([POD, BINDING]),
                               st.integers(0, 6)),
                     st.builds(lambda v: yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": v}),
                               st.lists(value, max_size=4)))
    return st.lists(docs, min_size=1, max_size=4).map("\n---\n".join)


def test_fuzz_manifests(capsys) -> None:
    def body(project: Project, text: str) -> None:
        status, output = project.run(["policy", "check", "m.yaml"], {"m.yaml": text}, capsys)
        assert_answered(status, output, "m.yaml", "0 blocking")

    fuzz("manifests", manifests_text(), body)


def test_fuzz_a_privileged_pod_in_lists_of_any_depth_is_always_caught(capsys) -> None:
    def body(project: Project, example: tuple[int, list]) -> None:
        depth, others = example
        doc = _nested({"apiVersion": "v1", "kind": "List", "items": [*others, POD]}, depth)
        status, output = project.run(["policy", "check", "m.yaml"], {"m.yaml": yaml.safe_dump(doc)}, capsys)
        assert status == 1 and "CGK-POD-001 [mandatory]" in output and "CGK-POD-002 [mandatory]" in output, output

    others = st.lists(st.sampled_from([BINDING, {"apiVersion": "v1", "kind": "List"}]), max_size=3)
    fuzz("a_privileged_pod_in_lists_of_any_depth_is_always_caught", st.tuples(st.integers(0, 30), others), body)


# ------------------------------------------------------------------------------ URL-taking fields

#: The marker of a secret: it may appear in a URL only where cgkit must refuse it and never print it.
SECRET = "S3cr3tFuzz"
URL_SCHEMES = ["s3", "S3", "azblob", "gs", "file", "http", "https", "HTTPS", "awskms", "hashivault", "gcpkms",
               "azurekeyvault", "passphrase", "ftp", ""]
URL_PARAMETERS = ["region", "endpoint", "profile", "prefix", "use_path_style", "disable_https", "engine", "sig", "sv",
                  "token", "X-Amz-Signature", "access_id", "context_team", "t", "client_secret", "api-key"]
_host = st.sampled_from(["cgkit-state", "otel-collector.observability.svc", "10.0.0.5", "[::1]", "[fe80::1%25eth0]",
                         "s3.example.nl", "Bad_Bucket", "", "127.0.0.1", "h", "[::1"])
_port = st.sampled_from(["", ":4318", ":9000", ":99999", ":x9", ":"])
_secret = st.integers(0, 10**6).map(lambda n: f"{SECRET}{n}")
_unsafe = st.text(alphabet="/?#@:&= \t%[]", max_size=3)  # the characters that end or split a URL's parts


def _url(parts) -> str:
    scheme, user, host, port, path, params, fragment = parts
    text = f"{scheme}://" if scheme else ""
    return text + user + host + port + path + ("?" + "&".join(params) if params else "") + fragment


#: A URL with a secret in its user information, in a parameter the engine does not read, or in its
#: fragment (a password with / ? # @ in it included); or an endpoint= whose own URL carries one.
_secret_user = st.builds(lambda a, s, c: f"{a}:{s}{c}@", st.sampled_from(["AKIA", "key", ""]), _secret, _unsafe)
_secret_param = st.builds(lambda k, s: f"{k}={s}", st.sampled_from(["sig", "token", "t", "X-Amz-Signature", "sv",
                                                                   "client_secret", "api-key", "x"]), _secret)
_plain_param = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(URL_PARAMETERS), st.sampled_from(
    ["eu-west-1", "true", "https://s3.example.nl", "http://10.0.0.5:9000", "transit", ""]))
_nested_endpoint = st.builds(lambda u, h: f"endpoint=https://{u}{h}", _secret_user, st.sampled_from(["s3.example.nl", "h:1"]))
secret_urls = st.builds(
    lambda parts: _url(parts),
    st.tuples(st.sampled_from(URL_SCHEMES), st.one_of(st.just(""), _secret_user), _host, _port,
              st.sampled_from(["", "/", "/realms/gm", "/x y"]),
              st.lists(st.one_of(_plain_param, _secret_param, _nested_endpoint), max_size=3),
              st.sampled_from(["", f"#{SECRET}", "#"]))).filter(lambda url: SECRET in url)


def _url_files(field: str, url: str) -> dict[str, str]:
    """The environment and municipality files with ``url`` in ``field``."""
    environment = ENVIRONMENT_BASE.copy()
    municipality = {"code": "GM0344", "domain": "utrecht.nl"}
    if field == "auth.oidc.issuer":
        municipality["auth"] = {"oidc": {"issuer": url, "client_id": "cgkit-gm0344"}}
    elif field == "backups.endpoint":
        environment["backups"] = {"endpoint": url, "bucket": "cgkit-backups"}
    else:
        section, key = field.split(".")
        environment[section] = {key: url}
    return {ENVIRONMENT: yaml.safe_dump(environment, allow_unicode=True),
            MUNICIPALITY: yaml.safe_dump(municipality, allow_unicode=True)}


URL_FIELDS = ["state.backend", "state.secrets_provider", "observability.otlp_endpoint", "backups.endpoint",
              "auth.oidc.issuer"]


def test_fuzz_url_fields_refuse_and_never_print_a_secret(capsys) -> None:
    def body(project: Project, example: tuple[str, str]) -> None:
        field, url = example
        status, output = project.run(["validate"], _url_files(field, url), capsys)
        file = MUNICIPALITY if field.startswith("auth") else ENVIRONMENT
        assert_answered(status, output, file, "file(s) valid")
        assert status == 1 and SECRET not in output, (field, url, output)

    fuzz("url_fields", st.tuples(st.sampled_from(URL_FIELDS), secret_urls), body)


def test_fuzz_state_migrate_to_never_prints_a_secret(capsys) -> None:
    def body(project: Project, url: str) -> None:
        status, output = project.run(["state", "migrate", "--env", "sandbox", "--to", url], {}, capsys)
        assert "Traceback" not in output and "internal error" not in output, output
        assert status == 1 and SECRET not in output, (url, output)

    fuzz("state_migrate_to", secret_urls, body)
