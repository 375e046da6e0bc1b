"""The fleet's runner image, ``cgkit.sandbox/runner:<key>``, built here like the sandbox's images.

Three layers, each a tarball cached under the images cache (``sandbox_images``):

1. the Debian bookworm root filesystem of the sandbox's images (Python 3.11 among its packages;
   ``sandbox_images.build_rootfs``), shared with them;
2. the runtime (``runtime-<key>.tar``): the engine's binaries of the offline toolchain (Pulumi CLI,
   the Python language host, the Kubernetes provider) under ``/opt/cgkit/toolchain/<key>/bin``, and
   the project's virtualenv at ``/opt/cgkit/project/.venv``: the packages this machine's
   ``.venv`` holds (the pins of pyproject.toml, built for CPython 3.11 as Debian's is), with
   Debian's ``/usr/bin/python3`` as its interpreter;
3. the project (``project-<key>.tar``): the files the programs, the policy pack and cgkit read
   (``PROJECT_PATHS``: the package, the programs, the components, the environments, the pins), the
   checkout's own tree as the host runs it (an editable install: cgkit reads tools/versions.toml
   next to its package). Stack configs (``Pulumi.<stack>.yaml``) are never baked in: a run hands
   them to its pods in a Secret.

The image runs as UID 1000 with ``python -m cgkit.fleet.pod`` as its entrypoint. Its key digests
the three layers' inputs, so a changed municipality file is a new tag (a new project layer only).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

from cgkit import sandbox_images, toolchain
from cgkit.project import find_root
from cgkit.sandbox_images import ImageBuildError, Progress

NAME = "runner"
PROJECT = "/opt/cgkit/project"
TOOLCHAIN = "/opt/cgkit/toolchain"
#: The toolchain files the engine runs, relative to the toolchain dir (cgkit/toolchain.py TOOLS;
#: the language host in bin/ is cgkit's shim, which starts Pulumi's own from libexec/).
ENGINE_TOOLS = ("bin/pulumi", "bin/pulumi-language-python", "bin/pulumi-language-python-exec",
                "bin/pulumi-resource-kubernetes", "libexec/pulumi-language-python",
                "libexec/pulumi-language-python-exec")
#: What of the checkout the image carries (relative to the project root).
PROJECT_PATHS = ("Pulumi.yaml", "pyproject.toml", "cgkit", "components", "stacks", "policies", "environments",
                 "tools/versions.toml")
_SKIP = ("__pycache__", ".pyc")
CONFIG = {"User": "1000:1000", "WorkingDir": "/work",
          "Entrypoint": [f"{PROJECT}/.venv/bin/python", "-m", "cgkit.fleet.pod"],
          "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={PROJECT}", f"CGKIT_TOOLCHAIN_DIR={TOOLCHAIN}"]}


def _site_packages() -> Path:
    """This machine's virtualenv's site-packages (what the runtime layer copies)."""
    return Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _project_files(root: Path) -> list[Path]:
    """Every file of ``PROJECT_PATHS`` under ``root``, sorted, without caches and stack configs."""
    found = []
    for rel in PROJECT_PATHS:
        path = root / rel
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        found += [p for p in candidates if not any(part in _SKIP or part.endswith(_SKIP) for part in p.parts)]
    return found


def _runtime_key() -> str:
    """Digest of the runtime layer's inputs: the toolchain key and the installed distributions."""
    dists = sorted(p.name for p in _site_packages().glob("*.dist-info"))
    return hashlib.sha256(json.dumps([toolchain.load_pins().key(), dists, sandbox_images.SUITE, ENGINE_TOOLS]).encode()).hexdigest()[:12]


def _project_key(root: Path) -> str:
    h = hashlib.sha256()
    for path in _project_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def key(root: Path | None = None) -> str:
    """A 12-hex-digit digest of all three layers' inputs (the image's tag)."""
    root = root or find_root()
    blob = json.dumps([sandbox_images.rootfs_key(), _runtime_key(), _project_key(root), CONFIG]).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def ref(root: Path | None = None) -> str:
    """``cgkit.sandbox/runner:<key>``."""
    return f"{sandbox_images.REGISTRY}/{NAME}:{key(root)}"


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A file as the image holds it: root's, read-only for the runner (bytecode caches are kept,
    with their sources' times, so that imports in a read-only image need no compiling)."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    # readable by the runner, writable by nobody but root, nothing setuid (onboard writes 0600 files)
    info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
    return info


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _runtime_layer(path: Path) -> None:
    """Write the runtime layer (see the module doc): toolchain binaries and the virtualenv."""
    tools = toolchain.bin_dir().parent
    venv = f"{PROJECT.lstrip('/')}/.venv"
    image_tools = f"{TOOLCHAIN.lstrip('/')}/{toolchain.load_pins().key()}"
    tmp = path.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for d in ("opt", "opt/cgkit", TOOLCHAIN.lstrip("/"), image_tools, f"{image_tools}/bin", f"{image_tools}/libexec",
                  PROJECT.lstrip("/"), venv, f"{venv}/bin", f"{venv}/lib", f"{venv}/lib/python3.11"):
            _dir(tar, d)
        for tool in ENGINE_TOOLS:
            if not (tools / tool).is_file():
                raise ImageBuildError(f"{tools / tool} is not built", hint="run tools/setup")
            tar.add(tools / tool, f"{image_tools}/{tool}", filter=_owned_by_root)
        cfg = b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
        info = tarfile.TarInfo(f"{venv}/pyvenv.cfg")
        info.size, info.mode = len(cfg), 0o644
        tar.addfile(info, io.BytesIO(cfg))
        _link(tar, f"{venv}/bin/python", "/usr/bin/python3")
        _link(tar, f"{venv}/bin/python3", "python")
        site = _site_packages()
        editable = ("__editable__", "cgkit-")  # the host's editable install points at its checkout
        _dir(tar, f"{venv}/lib/python3.11/site-packages")
        for entry in sorted(site.iterdir()):
            if not entry.name.startswith(editable):
                tar.add(entry, f"{venv}/lib/python3.11/site-packages/{entry.name}", filter=_owned_by_root)
    tmp.rename(path)


def _project_layer(path: Path, root: Path) -> None:
    """Write the project layer: ``PROJECT_PATHS`` of ``root`` under ``/opt/cgkit/project``."""
    with tarfile.open(path, "w") as tar:
        made = set()
        for file in _project_files(root):
            rel = file.relative_to(root)
            for parent in reversed(rel.parents[:-1]):
                if parent not in made:
                    _dir(tar, f"{PROJECT.lstrip('/')}/{parent.as_posix()}")
                    made.add(parent)
            tar.add(file, f"{PROJECT.lstrip('/')}/{rel.as_posix()}", filter=_owned_by_root)


def _base_layout(cache: Path, progress: Progress) -> Path:
    """The OCI layout with the root filesystem and the runtime layer (tag ``base``), built once per
    their inputs under ``<cache>/runner-base-<key>``; older ones are removed."""
    base_key = hashlib.sha256(json.dumps([sandbox_images.rootfs_key(), _runtime_key()]).encode()).hexdigest()[:12]
    layout = cache / f"runner-base-{base_key}"
    if (layout / "index.json").is_file():
        return layout
    for old in cache.glob("runner-base-*"):
        shutil.rmtree(old)
    rootfs = sandbox_images.build_rootfs(progress)
    progress("runner image: packing the engine and the virtualenv (once per toolchain and pins)")
    runtime = cache / f"runtime-{base_key}.tar"
    _runtime_layer(runtime)
    log, partial = cache / "runner-base.log", cache / f"runner-base-{base_key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    run = sandbox_images.run_logged
    run(["umoci", "init", "--layout", str(partial)], log)
    run(["umoci", "new", "--image", f"{partial}:base"], log)
    for layer in (rootfs, runtime):
        run(["umoci", "raw", "add-layer", "--image", f"{partial}:base", str(layer)], log)
    runtime.unlink()
    partial.rename(layout)
    return layout


def _link_blobs(src: str, dst: str) -> None:
    """Hard-link a layout's blobs (content-addressed, never rewritten); copy its index files, which
    umoci rewrites."""
    if f"{os.sep}blobs{os.sep}" in src:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def build(progress: Progress = lambda _m: None, root: Path | None = None) -> Path:
    """Build the runner image into an OCI archive (``<images cache>/runner-<key>.tar``) unless it
    exists; return it. ``ctr images import`` names it ``ref()``. The two large layers are added
    once (``_base_layout``); a build for changed project files copies that layout (hard links:
    its blobs are content-addressed and never rewritten) and adds only the project layer.

    Raises:
        ImageBuildError: umoci or mmdebstrap is missing or failed, or an engine binary is not built.
    """
    root = root or find_root()
    cache = sandbox_images.cache_dir().parent
    tag = key(root)
    out = cache / f"runner-{tag}.tar"
    if out.is_file():
        return out
    sandbox_images.require_tool("umoci")
    cache.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    base = _base_layout(cache, progress)
    for old in cache.glob("runner-*.tar"):  # an earlier project's image: one is kept
        old.unlink()
    layout, project, log = cache / f"runner-{tag}-oci", cache / f"project-{tag}.tar", cache / f"runner-{tag}.log"
    shutil.rmtree(layout, ignore_errors=True)
    shutil.copytree(base, layout, copy_function=_link_blobs)
    _project_layer(project, root)
    run = sandbox_images.run_logged
    run(["umoci", "raw", "add-layer", "--image", f"{layout}:base", "--tag", NAME, str(project)], log)
    run(["umoci", "config", "--image", f"{layout}:{NAME}", *sandbox_images.config_args(CONFIG)], log)
    run(["umoci", "rm", "--image", f"{layout}:base"], log)
    sandbox_images.pack_layout(layout, {NAME: f"{sandbox_images.REGISTRY}/{NAME}:{tag}"}, out)
    project.unlink()
    progress(f"runner image {tag} built in {time.monotonic() - start:.0f}s: {out}")
    return out
