"""cgkit.toolchain: pin parsing, cache layout, doctor's mismatch detection. Needs nothing built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgkit import toolchain
from cgkit.errors import ToolchainError

PINS_TOML = """
[pulumi]
version = "v3.274.1"
[pulumi-language-python]
sdk-version = "3.68.0"
[pulumi-kubernetes]
version = "4.25.0"
module-version = "v4.0.0-20260115033456-f47bc2d6f199"
[kubernetes]
version = "1.35.4"
[etcd]
version = "3.6.16"
[kwok]
version = "0.8.0"

[kube-router]
version = "v2.1.0"

[coredns]
version = "1.15.0"

[versitygw]
version = "v1.8.0"
"""


@pytest.fixture
def pins_file(tmp_path: Path) -> Path:
    path = tmp_path / "versions.toml"
    path.write_text(PINS_TOML)
    return path


def test_load_pins_strips_leading_v_but_keeps_pseudo_version(pins_file: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    assert pins.pulumi == "3.274.1"
    assert pins.kubernetes_provider_module == "v4.0.0-20260115033456-f47bc2d6f199"
    assert pins.kube_router == "2.1.0" and pins.coredns == "1.15.0" and pins.versitygw == "1.8.0"


def test_repo_pins_file_parses() -> None:
    pins = toolchain.load_pins()
    assert pins.kubernetes_provider == "4.25.0"  # must equal the PyPI pulumi-kubernetes pin


def test_missing_key_names_table_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "versions.toml"
    bad.write_text(PINS_TOML.replace('[etcd]\nversion = "3.6.16"\n', "[etcd]\n"))
    with pytest.raises(ToolchainError, match=r"\[etcd\] version"):
        toolchain.load_pins(bad)


def test_missing_file_is_a_toolchain_error(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="not found"):
        toolchain.load_pins(tmp_path / "nope.toml")


def test_key_changes_with_any_pin(pins_file: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    pins_file.write_text(PINS_TOML.replace("0.8.0", "0.8.1"))
    bumped = toolchain.load_pins(pins_file)
    assert pins.key() != bumped.key() and len(pins.key()) == 12


def test_cache_dir_honours_override_then_xdg(pins_file: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    assert toolchain.bin_dir(pins, {"CGKIT_TOOLCHAIN_DIR": "/x"}) == Path(f"/x/{pins.key()}/bin")
    xdg = toolchain.bin_dir(pins, {"XDG_CACHE_HOME": "/c", "HOME": "/h"})
    assert xdg == Path(f"/c/cgkit/toolchain/{pins.key()}/bin")
    assert toolchain.bin_dir(pins, {"HOME": "/h"}) == Path(f"/h/.cache/cgkit/toolchain/{pins.key()}/bin")


def _fake_tool(bindir: Path, name: str, prints: str) -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\necho '{prints}'\n")
    path.chmod(0o755)


def test_doctor_flags_missing_and_wrong_versions(pins_file: Path, tmp_path: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_tool(bindir, "kube-apiserver", "Kubernetes v1.35.4")
    _fake_tool(bindir, "etcd", "etcd Version: 3.5.0\nGit SHA: abc")
    _fake_tool(bindir, "pulumi-resource-kubernetes", "")
    toolchain.write_stamp(toolchain.tool("pulumi-resource-kubernetes"), bindir, "4.25.0")
    by_name = {s.name: s for s in toolchain.doctor(pins, bindir)}
    assert by_name["kube-apiserver"].ok and by_name["kube-apiserver"].found == "1.35.4"
    assert not by_name["etcd"].ok and by_name["etcd"].found == "3.5.0"
    assert by_name["pulumi-resource-kubernetes"].ok  # version from its stamp file
    assert by_name["kwokctl"].found is None and not by_name["kwokctl"].ok
    assert [s.name for s in toolchain.doctor(pins, bindir)] == [t.name for t in toolchain.TOOLS]


def test_parse_version_forms() -> None:
    assert toolchain.parse_version("v3.274.1") == "3.274.1"
    assert toolchain.parse_version("Client Version: v1.35.4\nKustomize Version: v5.7.1") == "1.35.4"
    assert toolchain.parse_version("no version here") is None


def test_engine_env_puts_bin_dir_first_and_disables_downloads(pins_file: Path, tmp_path: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    env = toolchain.engine_env(pins, pulumi_home=tmp_path / "home",
                               environ={"CGKIT_TOOLCHAIN_DIR": str(tmp_path), "PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / pins.key() / "bin")
    assert env["PATH"].endswith("/usr/bin")
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_HOME"] == str(tmp_path / "home")


def test_link_plugins_puts_the_provider_in_the_plugin_cache_idempotently(
        pins_file: Path, tmp_path: Path) -> None:
    pins = toolchain.load_pins(pins_file)
    environ = {"CGKIT_TOOLCHAIN_DIR": str(tmp_path / "tc")}
    home = tmp_path / "home"
    link = toolchain.link_plugins(home, pins, environ)
    again = toolchain.link_plugins(home, pins, environ)
    assert link == again == home / "plugins" / "resource-kubernetes-v4.25.0" / "pulumi-resource-kubernetes"
    assert os.readlink(link) == str(toolchain.bin_dir(pins, environ) / "pulumi-resource-kubernetes")
