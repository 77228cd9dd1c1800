"""Throwaway servers for the scaling-out tests: a PostgreSQL cluster and an MLflow tracking server.

``PostgresCluster`` runs Debian's (or any) PostgreSQL binaries: ``initdb`` into a fresh temporary
directory, ``pg_ctl start`` listening on 127.0.0.1 only (and a Unix socket inside that
directory), ``pg_ctl stop`` and removal at the end. The server refuses to run as root, so under
root it runs as the unprivileged user ``nobody`` (``setpriv``). ``MlflowServer`` runs ``mlflow
server`` with a PostgreSQL backend store and a local artifact root, bound to 127.0.0.1.

The README's "Scaling out" section gives the same commands for a user's own machines.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

UNPRIVILEGED = "nobody"  # the user the server runs as when the tests run as root


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout
    (``/usr/lib/postgresql/<major>/bin``, the newest major). None when there is none."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    majors = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(majors[-1]).parent if majors else None


def unavailable_reason() -> str | None:
    """Why no PostgreSQL server can be started here, or None when one can."""
    if postgres_bindir() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql;"
            " install them (Debian: apt-get install postgresql) to run this test"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is missing: pip install -e '.[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            return f"running as root and no unprivileged user {UNPRIVILEGED!r} to run the server"
        if shutil.which("setpriv") is None:
            return "running as root and no setpriv to drop privileges for the server"
    return None


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, on 127.0.0.1:<free port>, trust auth for
    the superuser ``genlab``. ``start()``/``stop()``; ``create_database(name)`` returns its URL."""

    user = "genlab"

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.bindir = postgres_bindir()
        # as root the server runs as nobody, who must reach its folder: /tmp, not a private TMPDIR
        parent = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        self.dir = Path(tempfile.mkdtemp(prefix="genlab-pg-", dir=parent))
        self.data = self.dir / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses root: run it as nobody
            entry = pwd.getpwnam(UNPRIVILEGED)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._as_user = [
                "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]  # fmt: skip

    def _run(self, *args: str) -> None:
        cmd = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir)
        if out.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}\n{tail}")

    def start(self) -> PostgresCluster:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropping an old one) and return its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str, args: tuple = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database)) as conn:
            return conn.execute(sql, args).fetchall()


class MlflowServer:
    """``mlflow server`` with ``backend`` (a database URL) as its backend store and ``artifacts``
    as its artifact root (served through the server), on 127.0.0.1:<free port>."""

    def __init__(self, backend: str, artifacts: Path, log: Path, workers: int = 2) -> None:
        self.backend, self.artifacts, self.log_path = backend, artifacts, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> MlflowServer:
        cmd = [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend,
            "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not up in {timeout} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:  # the data are in the database: no need to wait for a graceful shutdown
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
