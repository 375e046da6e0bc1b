"""cgkit.sandbox_images: names, keys and the cgkit layer, without building an image."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from cgkit import sandbox_images as si


def test_refs_name_the_sandbox_registry_and_the_input_key() -> None:
    assert si.ref("standin") == f"cgkit.sandbox/standin:{si.key()}"
    with pytest.raises(KeyError, match="known: pause"):
        si.ref("nginx")


def test_key_changes_with_the_stand_in_and_not_otherwise(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "standin"
    shutil.copytree(si.STANDIN_DIR, copy)
    monkeypatch.setattr(si, "STANDIN_DIR", copy)
    before = si.key()
    assert si.key() == before
    (copy / "standin.py").write_text((copy / "standin.py").read_text() + "\n# changed\n")
    assert si.key() != before
    assert si.rootfs_key() == si.rootfs_key()  # the Debian layer does not depend on cgkit's files


def test_the_cgkit_layer_links_the_stand_in_at_the_real_images_paths(tmp_path: Path) -> None:
    coredns = tmp_path / "coredns"
    coredns.write_bytes(b"\x7fELF")
    layer = tmp_path / "layer.tar"
    si._cgkit_layer(layer, coredns)
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for link in si.STANDIN_LINKS:
        assert members[link].issym() and members[link].linkname == "/opt/cgkit/standin.py"
    assert members["app/tmp"].uid == 1000  # the apps write there as UID 1000
    assert members["usr/local/bin/docker-entrypoint.sh"].mode & 0o111


def test_layout_index_names_each_image_for_containerd(tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    layout.mkdir()
    index = {"manifests": [{"annotations": {"org.opencontainers.image.ref.name": name}}
                           for name in si.IMAGES]}
    (layout / "index.json").write_text(json.dumps(index))
    si.pack_layout(layout, {name: si.ref(name) for name in si.IMAGES}, tmp_path / "images.tar")
    assert not layout.exists(), "the layout is removed once packed"
    with tarfile.open(tmp_path / "images.tar") as archive:
        named = json.loads(archive.extractfile("index.json").read())["manifests"]
    assert [m["annotations"]["io.containerd.image.name"] for m in named] == [si.ref(n) for n in si.IMAGES]
