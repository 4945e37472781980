"""A throwaway PostgreSQL server for tests: Debian's `postgresql` package (scripts/setup.sh and .ci/run
install it), started in a temporary directory on a free port, with a password so tests can check where
it shows.

PostgreSQL refuses to run as root; as root (CI containers) the server runs as the package's `postgres` user.
"""

from __future__ import annotations

import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "s3cret-pw-9f2c"
USER = "fslm_test"


@dataclass
class PostgresServer:
    directory: Path
    port: int
    run_as: list[str]  # the command prefix that runs a server binary as its owner

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, _binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(f"no {name}: install the `postgresql` package (scripts/setup.sh does)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(fsync: bool = False) -> PostgresServer:
    """Start a server (without fsync unless asked: tests need no durability); raise RuntimeError saying why
    when it cannot start."""
    directory = Path(tempfile.mkdtemp(prefix="fslm-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(directory, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    password_file = directory / "password"
    password_file.write_text(PASSWORD)
    if run_as:
        os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
    data = directory / "data"
    port = _free_port()
    steps = [
        [
            _binary("initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--pwfile",
            str(password_file),
            "-A",
            "scram-sha-256",
        ],
        [
            _binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(directory / "log"),
            "-w",
            "-o",
            f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}",
            "start",
        ],
    ]
    for step in steps:
        done = subprocess.run([*run_as, *step], check=False, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (directory / "log").read_text() if (directory / "log").exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"{' '.join(step[:1])} failed as {getpass.getuser()}: {done.stderr}{log}")
    return PostgresServer(directory, port, run_as)
