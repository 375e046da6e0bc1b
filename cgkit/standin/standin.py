#!/usr/bin/python3
"""Stand-in for a Common Ground app image in the sandbox: the app's contract without the app.

The sandbox cannot pull the real images (no registry is reachable), so its images are built from
Debian packages (cgkit/sandbox_images.py) and this one program plays every role of every app. It is
installed once and linked under the paths the real images and cgkit's manifests use, and it picks
its role from the name it was started as (``argv[0]``), as busybox does:

========================================  ==================================================
path (real image: maykinmedia/charts)     role
========================================  ==================================================
``/start.sh``                             web: ``migrate`` (as docker_start.sh does), then
                                          HTTP on :8000
``/celery_worker.sh``                     Celery worker: keeps its health files fresh
``/celery_beat.sh``                       Celery beat: keeps its schedule file fresh
``/app/src/manage.py``                    ``migrate``, ``setup_configuration --yaml-file F``
``/usr/local/bin/maykin-common``          ``worker-health-check`` / ``beat-health-check``
``/app/bin/check_celery_worker_liveness.py``, ``/celery_worker_liveness_probe.sh``
                                          worker liveness: the heartbeat file is fresh
========================================  ==================================================

What it honours, read from the environment cgkit gives the real app (components/app.py):
``DB_HOST``, ``DB_PORT``, ``DB_NAME``, ``DB_USER``, ``DB_PASSWORD``, ``PGSSLMODE``,
``CACHE_DEFAULT`` (``host:port/db``), ``CELERY_BROKER_URL`` (``redis://host:port/db``),
``ALLOWED_HOSTS`` (comma-separated), ``SECRET_KEY`` (must be set and non-empty).

* web answers any path with 200 only while its database answers ``SELECT 1`` as ``DB_USER``, the
  ``django_migrations`` table exists (migrations ran), Redis answers ``PING``, and the request's
  ``Host`` (port stripped) is in ``ALLOWED_HOSTS``; a disallowed host gets 400 (Django's
  DisallowedHost), a failing dependency 503 with the reason (never a credential).
* worker and beat check broker and database every 5 s and touch their files only while both work;
  when either fails the readiness files are removed, so the exec probes fail.

Standard library plus Debian's python3-psycopg2 and python3-redis (and python3-yaml for
setup_configuration). Never prints a secret.
"""

from __future__ import annotations

import http.server
import os
import signal
import sys
import time
from pathlib import Path

TMP = Path(os.environ.get("CGKIT_STANDIN_TMP", "/app/tmp"))
BEAT_DIR = Path(os.environ.get("CGKIT_STANDIN_BEAT_DIR", "/app/celerybeat"))
HEARTBEAT = TMP / "celery_worker_heartbeat"
WORKER_FILES = ("celery_worker_ready", "celery_worker.ready", "celery_worker_event_loop.live")
BEAT_FILES = (BEAT_DIR / "beat", TMP / "celery_beat.live")
PORT = 8000
CHECK_EVERY_S = 5.0


def _redis_from(url: str):
    """Return a redis client for ``redis://host:port/db`` or ``host:port/db``."""
    import redis

    if "://" not in url:
        url = f"redis://{url}"
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)


def _db_connect():
    """Connect to the app's database as the app's role (psycopg2); raises on failure."""
    import psycopg2

    return psycopg2.connect(host=os.environ["DB_HOST"], port=int(os.environ.get("DB_PORT", "5432")),
                            dbname=os.environ["DB_NAME"], user=os.environ["DB_USER"],
                            password=os.environ.get("DB_PASSWORD", ""),
                            sslmode=os.environ.get("PGSSLMODE", "prefer"), connect_timeout=3)


def check_database(need_migrations: bool) -> str | None:
    """Return None when the database answers (and has ``django_migrations`` if asked), else why."""
    try:
        with _db_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('django_migrations') IS NOT NULL")
            migrated = cur.fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"
        return f"database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if need_migrations and not migrated:
        return "database: migrations have not run (no django_migrations table)"
    return None


def check_redis(url_env: str) -> str | None:
    """Return None when the Redis named by ``$url_env`` answers PING, else why."""
    url = os.environ.get(url_env)
    if not url:
        return f"{url_env} is not set"
    try:
        _redis_from(url).ping()
    except Exception as exc:  # noqa: BLE001
        return f"redis ({url_env}): {type(exc).__name__}"
    return None


def _wait_for_db(timeout_s: float = 180.0):
    """Connect to the app's database, retrying every 2 s for up to ``timeout_s`` seconds (as the
    charts' ``wait_for_db`` step does before ``migrate``): a NetworkPolicy enforcer admits a new pod
    only once it has synced it, which on the sandbox's node takes longer than a Job pod lives.
    Raises the last connection error after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _db_connect()
        except Exception as exc:  # noqa: BLE001 - psycopg2.OperationalError and friends
            if time.monotonic() > deadline:
                raise
            print(f"waiting for the database ({type(exc).__name__})", flush=True)
            time.sleep(2)


def migrate() -> int:
    """``manage.py migrate``: create ``django_migrations`` and record this image's run (idempotent)."""
    with _wait_for_db() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS django_migrations (id serial PRIMARY KEY, "
                    "app varchar(255) NOT NULL, name varchar(255) NOT NULL, applied timestamptz NOT NULL)")
        cur.execute("INSERT INTO django_migrations (app, name, applied) SELECT 'cgkit_standin', "
                    "'0001_initial', now() WHERE NOT EXISTS (SELECT FROM django_migrations "
                    "WHERE app = 'cgkit_standin')")
    print("Operations to perform: stand-in migrations applied", flush=True)
    return 0


def setup_configuration(args: list[str]) -> int:
    """``manage.py setup_configuration --yaml-file F``: parse F and record it as applied."""
    import yaml

    if "--yaml-file" not in args or args.index("--yaml-file") + 1 >= len(args):
        print("setup_configuration: --yaml-file FILE is required", file=sys.stderr)
        return 2
    path = Path(args[args.index("--yaml-file") + 1])
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        print(f"setup_configuration: {path} is not a mapping", file=sys.stderr)
        return 1
    with _wait_for_db() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS cgkit_setup_configuration "
                    "(step varchar(255) PRIMARY KEY, applied timestamptz NOT NULL)")
        for step in sorted(k for k in data if k.endswith("_enable") and data[k]):
            cur.execute("INSERT INTO cgkit_setup_configuration VALUES (%s, now()) "
                        "ON CONFLICT (step) DO UPDATE SET applied = now()", (step,))
    print(f"setup_configuration: {path} applied", flush=True)
    return 0


class _Web(http.server.BaseHTTPRequestHandler):
    """Answers every GET after checking Host, database and Redis (see the module doc)."""

    allowed: frozenset[str] = frozenset()
    cache: dict[str, tuple[float, str | None]] = {}

    def _health(self) -> str | None:
        at, why = self.cache.get("health", (0.0, "unchecked"))
        if time.monotonic() - at > 2.0:
            why = check_database(need_migrations=True) or check_redis("CACHE_DEFAULT")
            self.cache["health"] = (time.monotonic(), why)
        return why

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in self.allowed:
            self._reply(400, f"Invalid HTTP_HOST header: {host!r}\n")
            return
        why = self._health()
        self._reply(503 if why else 200, f"{why}\n" if why else "ok\n")

    def _reply(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:  # one line per request, no headers
        sys.stdout.write(f"{self.address_string()} {fmt % args}\n")
        sys.stdout.flush()


def web() -> int:
    """The web role: migrate (retrying until the database is there), then serve :8000."""
    if not os.environ.get("SECRET_KEY"):
        print("SECRET_KEY is not set", file=sys.stderr)
        return 1
    while True:
        try:
            migrate()
            break
        except Exception as exc:  # noqa: BLE001 - the database may not exist yet: retry
            print(f"migrate: waiting for the database ({type(exc).__name__})", flush=True)
            time.sleep(CHECK_EVERY_S)
    _Web.allowed = frozenset(h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip())
    server = http.server.ThreadingHTTPServer(("", PORT), _Web)
    print(f"stand-in web listening on :{PORT}", flush=True)
    server.serve_forever()
    return 0


def _keep_fresh(files: list[Path]) -> int:
    """Loop: while broker and database work, touch ``files``; otherwise remove them."""
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
    while True:
        why = check_redis("CELERY_BROKER_URL") or check_database(need_migrations=False)
        for f in files:
            if why:
                f.unlink(missing_ok=True)
            else:
                f.touch()
        print(f"not healthy: {why}" if why else "healthy", flush=True)
        time.sleep(CHECK_EVERY_S)


def _fresh(path: Path, max_age_s: float) -> bool:
    """True when ``path`` exists and was touched within ``max_age_s`` seconds."""
    try:
        return time.time() - path.stat().st_mtime <= max_age_s
    except OSError:
        return False


def _opt(args: list[str], name: str, default: str | None = None) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in ``args``."""
    for i, a in enumerate(args):
        if a.startswith(f"{name}="):
            return a.split("=", 1)[1]
        if a == name and i + 1 < len(args):
            return args[i + 1]
    return default


def maykin_common(args: list[str]) -> int:
    """``maykin-common worker-health-check|beat-health-check`` as the charts' probes call it."""
    if args[:1] == ["beat-health-check"]:
        return 0 if _fresh(Path(_opt(args, "--file", str(TMP / "celery_beat.live"))),
                           float(_opt(args, "--max-age", "600"))) else 1
    if args[:1] == ["worker-health-check"]:
        ready = _opt(args, "--readiness-file")
        if "--no-skip-readiness" in args and ready and not Path(ready).exists():
            return 1
        live = _opt(args, "--liveness-file")
        if live and "--skip-event-loop-liveness" not in args:
            return 0 if _fresh(Path(live), float(_opt(args, "--max-age", "70"))) else 1
        return 0
    print(f"maykin-common (stand-in): unknown command {args[:1]}", file=sys.stderr)
    return 2


def _stop_on_sigterm() -> None:
    """Exit at once on SIGTERM, as the real images' servers do (gunicorn, celery). The stand-in runs
    as its container's PID 1, for which the kernel ignores a signal that has no handler: without one,
    every pod of the stand-in waited out its whole termination grace period (30 s) on each delete."""
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))


def main(argv: list[str]) -> int:
    """Dispatch on the name this program was started as (see the module doc)."""
    name, args = Path(argv[0]).name, argv[1:]
    if name == "manage.py":
        if args[:1] == ["migrate"]:
            return migrate()
        if args[:1] == ["setup_configuration"]:
            return setup_configuration(args[1:])
        print(f"manage.py (stand-in): unsupported command {args[:1]}", file=sys.stderr)
        return 2
    if name == "maykin-common":
        return maykin_common(args)
    if name in ("check_celery_worker_liveness.py", "celery_worker_liveness_probe.sh"):
        return 0 if _fresh(HEARTBEAT, 60) else 1
    if name in ("celery_worker.sh", "celery_beat.sh", "start.sh"):  # the long-running roles
        _stop_on_sigterm()
    if name == "celery_worker.sh":
        return _keep_fresh([TMP / f for f in WORKER_FILES] + [HEARTBEAT])
    if name == "celery_beat.sh":
        return _keep_fresh(list(BEAT_FILES))
    if name == "start.sh":
        return web()
    print(f"stand-in: started as {name!r}, which is no role of it", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
