"""A throwaway PostgreSQL cluster for the tests (and scripts/bench_replicas.py): initdb into a
temporary folder, ``pg_ctl start`` on a free loopback port, one fresh database per test.

``ASSISTANT_TEST_DATABASE_URL`` (a server you run, whose user may create databases) is used
instead when set. Nothing is written outside the temporary folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
ENV_URL = "ASSISTANT_TEST_DATABASE_URL"


def find_pg_bin() -> Path | None:
    """The folder of initdb and pg_ctl: Debian's (the newest installed version), else PATH's."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for d in [Path(x) for x in PG_BIN_DIRS] + debian[::-1]:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL server for tests: ``admin_url`` connects as its superuser (user
    ``assistant`` with a password, over TCP on 127.0.0.1); :meth:`create_database` gives a new,
    empty database and its URL."""

    def __init__(self, admin_url: str, *, folder: Path | None = None, pg_bin: Path | None = None) -> None:
        self.admin_url = admin_url
        self.folder = folder
        self.pg_bin = pg_bin
        self._count = 0

    @classmethod
    def start(cls, pg_bin: Path) -> PostgresCluster:
        """initdb + pg_ctl start in a new temporary folder (as the ``postgres`` user when root)."""
        folder = Path(tempfile.mkdtemp(prefix="assistant-pg-"))
        data = folder / "data"
        password = "pw-" + secrets.token_hex(8)
        (folder / "pwfile").write_text(password + "\n")
        as_root = os.geteuid() == 0
        prefix: list[str] = []
        if as_root:
            # The server refuses to run as root: the folder goes to the postgres user, and the
            # folders above it must be traversable for it.
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(folder / "pwfile", "postgres", "postgres")
            for parent in folder.parents:
                if parent != Path("/"):
                    parent.chmod(parent.stat().st_mode | 0o001)
            prefix = ["runuser", "-u", "postgres", "--"]
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(folder)}
        env.pop("PGDATA", None)

        def run(*args: str) -> None:
            proc = subprocess.run([*prefix, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

        run(
            str(pg_bin / "initdb"), "-D", str(data), "-U", "assistant", "--pwfile", str(folder / "pwfile"),
            "-A", "scram-sha-256", "-E", "UTF8", "--no-sync",
        )
        port = free_port()
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
            " -c shared_buffers=32MB"
        )
        run(str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "-t", "60", "start")
        url = f"postgresql://assistant:{urllib.parse.quote(password)}@127.0.0.1:{port}/postgres"
        cluster = cls(url, folder=folder, pg_bin=pg_bin)
        cluster._prefix, cluster._env, cluster.port = prefix, env, port
        return cluster

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        self._count += 1
        name = name or f"t{os.getpid()}_{self._count}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def stop(self) -> None:
        if self.folder is None:
            return
        subprocess.run(
            [*self._prefix, str(self.pg_bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
            cwd=self.folder, env=self._env, capture_output=True, timeout=120,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def cluster_from_env_or_start() -> PostgresCluster | str:
    """The cluster to test against, or the reason there is none (no server binaries)."""
    if os.environ.get(ENV_URL):
        return PostgresCluster(os.environ[ENV_URL])
    pg_bin = find_pg_bin()
    if pg_bin is None:
        return (
            f"PostgreSQL server binaries not found (looked in {', '.join(PG_BIN_DIRS)} and PATH); "
            f"install Debian's postgresql package or set {ENV_URL}"
        )
    return PostgresCluster.start(pg_bin)
