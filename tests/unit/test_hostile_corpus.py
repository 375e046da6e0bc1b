"""Hostile inputs, one folder each under hostile/: every command must answer with its message and
exit status, never a traceback, an internal error or a hang.

A case folder holds ``case.yaml``, ``expect.txt`` and optionally ``files/`` (copied over a scratch
project that has the sandbox environment file without waves and no municipality files)::

    argv: [validate]            # the cgkit command line
    exit: 1                     # the exit status it must end with
    stdin: "text"               # optional; or {random_bytes: N}
    never: [wJalrXUtnFEMI]      # optional: text that must not occur in the output (a secret given)
    setup:                      # optional, in order; paths are relative to the project root
      - {generate: path, kind: billion-laughs | deep-nesting | huge | random-bytes | nul-byte}
      - {symlink: path, to: /etc/passwd}        # "{outside}" is a folder outside the project
      - {symlink: path, to: "{outside}/x", dir: true}   # ... and create the folder it leads to
      - {fifo: path}
      - {mkdir: path}
      - {remove: path}
      - {onboard: GM0344}

``expect.txt``: lines that must each occur in the command's output (stdout and stderr together);
``{root}`` and ``{outside}`` stand for those folders.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml

from cgkit.cli.app import main
from cgkit.onboard import onboard

CORPUS = Path(__file__).parent / "hostile"
#: Seconds a case may take before it counts as a hang (generous: the machine may be loaded).
HANG_AFTER = 120


def generate(kind: str) -> bytes:
    """The bytes of a generated hostile file (too big or too odd to keep in git)."""
    if kind == "billion-laughs":
        lines = ["code: GM0344", "domain: x.nl", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
        return "\n".join(lines).encode()
    if kind == "deep-nesting":
        return b"code: GM0344\ndomain: x.nl\nname: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    if kind == "huge":
        return b"code: GM0344\ndomain: x.nl\n" + b"# padding\n" * 200_000
    if kind == "random-bytes":
        return random.Random(9).randbytes(4096)
    if kind == "nul-byte":
        return b"code: GM0344\ndomain: x.nl\nname: Utr\x00echt\n"
    raise ValueError(kind)


def prepare(case: Path, root: Path, outside: Path) -> dict:
    spec = yaml.safe_load((case / "case.yaml").read_text())
    if (case / "files").is_dir():
        shutil.copytree(case / "files", root, dirs_exist_ok=True)
    for step in spec.get("setup") or ():
        target = root / next(iter(step.values())) if "onboard" not in step else None
        if "generate" in step:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(generate(step["kind"]))
        elif "symlink" in step:
            target.parent.mkdir(parents=True, exist_ok=True)
            destination = step["to"].replace("{outside}", str(outside))
            if step.get("dir"):
                Path(destination).mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            target.symlink_to(destination)
        elif "fifo" in step:
            os.mkfifo(target)
        elif "mkdir" in step:
            target.mkdir(parents=True, exist_ok=True)
        elif "remove" in step:
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        elif "onboard" in step:
            onboard(root, "sandbox", step["onboard"])
    return spec


def _hang(signum, frame):
    raise TimeoutError(f"no answer within {HANG_AFTER} s")


@pytest.mark.parametrize("case", sorted(p.name for p in CORPUS.iterdir() if (p / "case.yaml").is_file()))
def test_hostile_input_gets_its_message(case: str, scratch_root: Path, tmp_path_factory, monkeypatch, capfd) -> None:
    outside = tmp_path_factory.mktemp("outside")
    spec = prepare(CORPUS / case, scratch_root, outside)
    monkeypatch.chdir(scratch_root)
    monkeypatch.delenv("CGKIT_PROJECT_DIR", raising=False)
    monkeypatch.delenv("CGKIT_DEBUG", raising=False)
    # No sandbox, also when the test run has one: the corpus attacks input (cluster faults are the
    # integration tier's), and a command that gets as far as the cluster must say it is not there.
    monkeypatch.setenv("CGKIT_SANDBOX_DIR", str(scratch_root / ".cgkit" / "no-sandbox"))
    stdin = spec.get("stdin")
    if stdin is not None:
        raw = random.Random(3).randbytes(stdin["random_bytes"]) if isinstance(stdin, dict) else stdin.encode()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(HANG_AFTER)
    try:
        status = main([str(a) for a in spec["argv"]])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capfd.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output and "internal error" not in output, output
    for line in (CORPUS / case / "expect.txt").read_text().splitlines():
        wanted = line.replace("{root}", str(scratch_root.resolve())).replace("{outside}", str(outside.resolve()))
        assert wanted in output, f"{case}: expected {wanted!r} in:\n{output}"
    for secret in spec.get("never") or ():
        assert secret not in output, f"{case}: {secret!r} must not be printed:\n{output}"
    assert status == spec["exit"], output
