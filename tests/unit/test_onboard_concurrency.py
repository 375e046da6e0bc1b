"""Concurrent `onboard`s of one code: exactly one file wins, the others are told, nothing is half-written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from cgkit import onboard as onboard_mod
from cgkit.errors import FileExistsCgkitError

FOLDER = "environments/sandbox/municipalities"


def test_two_onboards_racing_past_the_exists_check_give_one_file_and_one_refusal(scratch_root: Path, monkeypatch) -> None:
    both_written = threading.Barrier(2, timeout=30)
    real_link = os.link

    def link_together(src, dst):  # both temp files are written and checked before either links
        both_written.wait()
        return real_link(src, dst)

    monkeypatch.setattr(onboard_mod.os, "link", link_together)
    outcomes: dict[str, object] = {}

    def run(domain: str) -> None:
        try:
            outcomes[domain] = onboard_mod.onboard(scratch_root, "sandbox", "GM0344", domain=domain)
        except FileExistsCgkitError as refused:
            outcomes[domain] = refused

    threads = [threading.Thread(target=run, args=(d,)) for d in ("first.example.nl", "second.example.nl")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [d for d, o in outcomes.items() if isinstance(o, Path)]
    losers = [o for o in outcomes.values() if isinstance(o, FileExistsCgkitError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "written while this onboard ran" in str(losers[0])
    assert f"domain: {winners[0]}\n" in (scratch_root / FOLDER / "gm0344.yaml").read_text()
    assert os.listdir(scratch_root / FOLDER) == ["gm0344.yaml"], "no temporary file may be left behind"


def test_forced_onboards_racing_leave_one_whole_file(scratch_root: Path) -> None:
    domains = [f"d{i}.example.nl" for i in range(8)]
    threads = [threading.Thread(target=onboard_mod.onboard, args=(scratch_root, "sandbox", "GM0344", d, True))
               for d in domains]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    text = (scratch_root / FOLDER / "gm0344.yaml").read_text()
    assert sum(f"domain: {d}\n" in text for d in domains) == 1 and text.count("code: GM0344") == 1
    assert os.listdir(scratch_root / FOLDER) == ["gm0344.yaml"]


def test_concurrent_onboard_processes_report_one_success(scratch_root: Path) -> None:
    processes = 4
    env = {**os.environ, "CGKIT_PROJECT_DIR": str(scratch_root)}
    runs = [subprocess.Popen([sys.executable, "-m", "cgkit.cli.app", "onboard", "GM0153", "--env", "sandbox",
                              "--domain", f"p{i}.example.nl"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(processes)]
    results = [(r.wait(120), *r.communicate()) for r in runs]
    assert sorted(code for code, _, _ in results) == [0] + [1] * (processes - 1), results
    assert all("already exists" in err for code, _, err in results if code == 1), results
    text = (scratch_root / FOLDER / "gm0153.yaml").read_text()
    assert sum(f"domain: p{i}.example.nl\n" in text for i in range(processes)) == 1
