"""The runner image's project layer: what of a checkout it carries and when its tag changes."""

from __future__ import annotations

import tarfile
from pathlib import Path

from cgkit import runner_image


def _checkout(root: Path) -> Path:
    for rel, text in {"Pulumi.yaml": "name: cgkit\n", "pyproject.toml": "", "tools/versions.toml": "",
                      "cgkit/__init__.py": "", "cgkit/__pycache__/__init__.cpython-311.pyc": "x",
                      "stacks/__main__.py": "", "components/app.py": "", "policies/pack.py": "",
                      "environments/sandbox/environment.yaml": "name: sandbox\n",
                      "environments/sandbox/municipalities/gm0344.yaml": "code: GM0344\n",
                      "Pulumi.sandbox.gm0344.yaml": "config: {cgkit:secret: {secure: abc}}\n",
                      "tests/unit/test_x.py": "", ".cgkit/passphrase": "never"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        (root / rel).chmod(0o600)
    return root


def test_the_project_layer_carries_programs_and_config_but_no_stack_config_secret_or_cache(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "checkout")
    layer = tmp_path / "project.tar"
    runner_image._project_layer(layer, root)
    with tarfile.open(layer) as tar:
        files = {m.name for m in tar.getmembers() if m.isfile()}
        owners = {(m.uid, m.gid) for m in tar.getmembers()}
        modes = {m.mode for m in tar.getmembers() if m.isfile()}
    prefix = runner_image.PROJECT.lstrip("/")
    assert files == {f"{prefix}/{rel}" for rel in (
        "Pulumi.yaml", "pyproject.toml", "tools/versions.toml", "cgkit/__init__.py", "stacks/__main__.py",
        "components/app.py", "policies/pack.py", "environments/sandbox/environment.yaml",
        "environments/sandbox/municipalities/gm0344.yaml")}
    assert owners == {(0, 0)}, "the runner (UID 1000) cannot change what it runs"
    assert modes == {0o644}, "but reads every file, a 0600 municipality file (as onboard writes it) too"


def test_a_changed_municipality_file_is_a_new_project_key(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "checkout")
    before = runner_image._project_key(root)
    (root / "Pulumi.sandbox.gm0344.yaml").write_text("config: {}\n")
    assert runner_image._project_key(root) == before, "stack configs travel in the wave's Secret, not the image"
    (root / "environments/sandbox/municipalities/gm0344.yaml").write_text("code: GM0344\nsize: L\n")
    assert runner_image._project_key(root) != before
