"""The sandbox's container images, built here from Debian packages (no registry is reachable).

One Debian root filesystem (``mmdebstrap``, suite bookworm) carries everything the sandbox runs:
PostgreSQL 15 with PostGIS 3, Redis 7, Python 3 with psycopg2/redis/yaml for the app stand-ins
(cgkit/standin/), the AWS CLI for the backups, and catatonit as the pod sandbox ("pause") process. A second, small layer adds
cgkit's files: the stand-in program linked under the paths of the real images, the PostgreSQL
entrypoint, and the CoreDNS binary from the toolchain. Every image shares those two layers and
differs only in its OCI config (entrypoint, command, user, env), so the node stores them once.

Images (``IMAGES``), referenced as ``cgkit.sandbox/<name>:<key>``:
    pause     the pod sandbox of every pod (containerd ``sandbox_image``)
    postgis   stands in for docker.io/postgis/postgis (same env contract: POSTGRES_PASSWORD, PGDATA)
    redis     stands in for docker.io/redis (``redis-server`` with the StatefulSet's args)
    standin   stands in for every Common Ground app image (web, worker, beat, manage.py)
    coredns   the cluster DNS of the real node
    awscli    stands in for docker.io/amazon/aws-cli (Debian's awscli 2): the backups' uploader

``key`` is a digest of every input (suite, packages, hooks, cgkit's files, CoreDNS version), so
a change of any input is a new tag and a new build; a built key is reused (cache under
``$CGKIT_IMAGES_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/cgkit/images``). Tools: mmdebstrap and umoci (Debian packages,
installed by tools/setup). The OCI layout gets ``io.containerd.image.name`` annotations so that
``ctr images import`` names each image.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from cgkit import toolchain
from cgkit.errors import CgkitError

REGISTRY = "cgkit.sandbox"
SUITE = "bookworm"
PACKAGES = ("catatonit", "postgresql-15", "postgresql-15-postgis-3", "redis-server", "python3",
            "python3-psycopg2", "python3-redis", "python3-yaml", "python-is-python3", "awscli")
# The official postgres and redis images run as UID/GID 999; components/backing.py does too.
# postgresql-common's postinst keeps an existing postgres user, so it is made before the packages.
ESSENTIAL_HOOK = ('echo "postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh" >> "$1/etc/passwd"; '
                  'echo "postgres:x:999:" >> "$1/etc/group"; '
                  'echo "app:x:1000:1000:Common Ground app stand-in:/app:/bin/sh" >> "$1/etc/passwd"; '
                  'echo "app:x:1000:" >> "$1/etc/group"')
CUSTOMIZE_HOOK = 'rm -rf "$1"/usr/share/doc "$1"/usr/share/man "$1"/usr/share/locale "$1"/var/cache/apt/*'
STANDIN_DIR = Path(__file__).resolve().parent / "standin"
PG_BIN = "/usr/lib/postgresql/15/bin"
PATH = f"{PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Paths of the real images (maykinmedia/charts, open-zaak bin/) at which the stand-in is linked.
STANDIN_LINKS = ("start.sh", "celery_worker.sh", "celery_beat.sh", "celery_worker_liveness_probe.sh",
                 "app/src/manage.py", "app/bin/check_celery_worker_liveness.py",
                 "usr/local/bin/maykin-common")
APP_DIRS = ("app", "app/tmp", "app/celerybeat", "app/media", "app/private-media",
            "app/private_media", "app/log")
IMAGES: dict[str, dict] = {
    "pause": {"Entrypoint": ["/usr/bin/catatonit", "-P"], "User": "65535:65535"},
    "postgis": {"Entrypoint": ["/usr/local/bin/docker-entrypoint.sh"], "Cmd": ["postgres"],
                "User": "999:999", "Env": [f"PATH={PATH}", "PGDATA=/var/lib/postgresql/data"]},
    "redis": {"Cmd": ["redis-server"], "User": "999:999", "WorkingDir": "/data"},
    "standin": {"Cmd": ["/start.sh"], "User": "1000:1000", "WorkingDir": "/app"},
    "coredns": {"Entrypoint": ["/usr/local/bin/coredns"], "Cmd": ["-conf", "/etc/coredns/Corefile"]},
    "awscli": {"Entrypoint": ["/usr/bin/aws"], "User": "999:999"},
}
Progress = Callable[[str], None]


class ImageBuildError(CgkitError):
    """An image build step failed; ``hint`` says where its log is."""

    reference = "sandbox"


def rootfs_key() -> str:
    """Return a 12-hex-digit digest of the Debian root filesystem's inputs (suite, packages, hooks)."""
    blob = json.dumps([SUITE, PACKAGES, ESSENTIAL_HOOK, CUSTOMIZE_HOOK]).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def key() -> str:
    """Return a 12-hex-digit digest of every input of the images (see the module doc)."""
    h = hashlib.sha256()
    h.update(json.dumps([rootfs_key(), STANDIN_LINKS, APP_DIRS, IMAGES,
                         toolchain.load_pins().coredns]).encode())
    for f in sorted(STANDIN_DIR.iterdir()):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def ref(name: str) -> str:
    """Return the reference of image ``name`` (a key of IMAGES), e.g. ``cgkit.sandbox/redis:<key>``.

    Raises:
        KeyError: ``name`` is not one of the sandbox's images.
    """
    if name not in IMAGES:
        raise KeyError(f"no sandbox image {name!r}; known: {', '.join(IMAGES)}")
    return f"{REGISTRY}/{name}:{key()}"


def _cache_root() -> Path:
    """``$CGKIT_IMAGES_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/cgkit/images``."""
    if os.environ.get("CGKIT_IMAGES_DIR"):
        return Path(os.environ["CGKIT_IMAGES_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgkit" / "images"


def cache_dir() -> Path:
    """Return ``<cache root>/<key>`` (may not exist yet)."""
    return _cache_root() / key()


def rootfs_path() -> Path:
    """Return the cached root filesystem tarball ``.../images/rootfs-<rootfs_key>.tar``."""
    return _cache_root() / f"rootfs-{rootfs_key()}.tar"


def require_tool(tool: str) -> None:
    """Raise ImageBuildError (hint: tools/setup) unless ``tool`` is on PATH."""
    if shutil.which(tool) is None:
        raise ImageBuildError(f"{tool} not found", hint="run tools/setup (installs the Debian packages)")


def build_rootfs(progress: Progress = lambda _m: None) -> Path:
    """Build the Debian root filesystem tarball with mmdebstrap, unless it is cached.

    Needs no toolchain, so tools/setup runs it beside the toolchain build (it waits on downloads,
    the toolchain on the CPU). Returns ``rootfs_path()``. Raises ImageBuildError (mmdebstrap
    missing or failed; the log is ``<path>.log``).
    """
    out = rootfs_path()
    if out.is_file():
        progress(f"root filesystem {rootfs_key()} cached: {out}")
        return out
    require_tool("mmdebstrap")
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    log.write_text("")
    start = time.monotonic()
    progress(f"building the Debian {SUITE} root filesystem (mmdebstrap; minutes when cold)")
    tmp = out.with_suffix(".tmp.tar")
    run_logged(["mmdebstrap", "--variant=essential", f"--include={','.join(PACKAGES)}",
          f"--essential-hook={ESSENTIAL_HOOK}", f"--customize-hook={CUSTOMIZE_HOOK}",
          SUITE, str(tmp)], log)
    tmp.rename(out)
    progress(f"root filesystem built in {time.monotonic() - start:.0f}s: {out}")
    return out


def archive() -> Path:
    """Return the OCI archive that ``ctr images import`` loads (exists once built)."""
    return cache_dir() / "images.tar"


def run_logged(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` appending its output to ``log``; ImageBuildError with the log's tail on failure."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise ImageBuildError(f"`{cmd[0]} {cmd[1] if len(cmd) > 1 else ''}` failed (exit {rc}):\n{tail}",
                              hint=f"full log: {log}")


def _cgkit_layer(path: Path, coredns: Path) -> None:
    """Write the small layer of cgkit's files (stand-in, links, app dirs, entrypoint, CoreDNS)."""

    def add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o755,
            uid: int = 0, link: str | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.uid, info.gid, info.mode = 0, uid, uid, mode
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        elif data is None:
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w") as tar:
        for d in ("opt", "opt/cgkit", "app", "app/src", "app/bin", "etc/coredns"):
            add(tar, d)
        for d in APP_DIRS:
            add(tar, d, uid=1000, mode=0o775)
        add(tar, "opt/cgkit/standin.py", (STANDIN_DIR / "standin.py").read_bytes())
        for link in STANDIN_LINKS:
            add(tar, link, link="/opt/cgkit/standin.py")
        add(tar, "usr/local/bin/docker-entrypoint.sh",
            (STANDIN_DIR / "postgres-entrypoint.sh").read_bytes())
        add(tar, "usr/local/bin/coredns", coredns.read_bytes())


def config_args(cfg: dict) -> list[str]:
    """``umoci config`` flags for an image config in the shape of IMAGES' entries (Env, Entrypoint,
    Cmd, User, WorkingDir); without Env the image gets ``PATH``."""
    args = ["--clear=config.env"]
    for env in cfg.get("Env", [f"PATH={PATH}"]):
        args += ["--config.env", env]
    for flag, field in (("--config.entrypoint", "Entrypoint"), ("--config.cmd", "Cmd")):
        for arg in cfg.get(field, []):
            args += [flag, arg]
    if "User" in cfg:
        args += ["--config.user", cfg["User"]]
    if "WorkingDir" in cfg:
        args += ["--config.workingdir", cfg["WorkingDir"]]
    return args


def pack_layout(layout: Path, refs: dict[str, str], out: Path) -> None:
    """Name each tag of the OCI ``layout`` by its full reference in ``refs`` (tag -> ref; the
    ``io.containerd.image.name`` annotation ``ctr images import`` reads), write the layout as the
    archive ``out`` (atomically: a partial file is never left) and remove the layout."""
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    for m in index["manifests"]:
        tag = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        if tag in refs:
            m["annotations"]["io.containerd.image.name"] = refs[tag]
    index_path.write_text(json.dumps(index))
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for entry in sorted(layout.iterdir()):
            tar.add(entry, arcname=entry.name)
    shutil.rmtree(layout)
    tmp.rename(out)


def build(progress: Progress = lambda _m: None, force: bool = False) -> Path:
    """Build every sandbox image into one OCI archive; skip when this key is built.

    Args:
        progress: called with one line per step.
        force: rebuild even when the archive exists.

    Returns:
        The archive path (``archive()``).

    Raises:
        ImageBuildError: mmdebstrap or umoci is missing or failed (with the log's tail and path),
            or the CoreDNS binary is not built yet (hint: build the toolchain first).
        ToolchainError: tools/versions.toml cannot be read.
    """
    out = archive()
    if out.is_file() and not force:
        progress(f"images {key()} already built: {out}")
        return out
    require_tool("umoci")
    coredns = toolchain.bin_dir() / "coredns"
    if not coredns.is_file():
        raise ImageBuildError(f"CoreDNS binary missing at {coredns}", hint="run tools/build-toolchain")
    work = cache_dir()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    rootfs = build_rootfs(progress)
    start = time.monotonic()
    progress("assembling the images (umoci)")
    layer = work / "cgkit-layer.tar"
    _cgkit_layer(layer, coredns)
    layout = work / "oci"
    run_logged(["umoci", "init", "--layout", str(layout)], log)
    run_logged(["umoci", "new", "--image", f"{layout}:base"], log)
    run_logged(["umoci", "raw", "add-layer", "--image", f"{layout}:base", str(rootfs)], log)
    run_logged(["umoci", "raw", "add-layer", "--image", f"{layout}:base", str(layer)], log)
    for name, cfg in IMAGES.items():
        run_logged(["umoci", "config", "--image", f"{layout}:base", "--tag", name, *config_args(cfg)], log)
    run_logged(["umoci", "rm", "--image", f"{layout}:base"], log)
    pack_layout(layout, {name: ref(name) for name in IMAGES}, out)
    layer.unlink()
    progress(f"images {key()} built in {time.monotonic() - start:.0f}s: {out}")
    return out
