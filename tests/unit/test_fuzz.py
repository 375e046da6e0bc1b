"""Property-based fuzzing (Hypothesis) of the three kinds of input cgkit reads: municipality files,
environment files and manifests. Whatever the input, the command answers: no exception escapes (no
traceback, no "internal error"), every error line names the file, and the exit status is 0 or 1 as
the output says. A privileged pod wrapped in Lists of any depth is always caught.

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
