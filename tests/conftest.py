"""Shared fixtures. Real-data tests need PIPELINE_DATA_MIRROR (or the network); under CI=true a
missing mirror fails them instead of skipping, so CI never passes by proving nothing."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# A shell starting a job in the background (`cmd &`) makes it ignore SIGINT, and children inherit
# that: the Ctrl-C tests would then test nothing. Give the suite the disposition a terminal has
# (a Python handler here; the stages under test start with the default one).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mirror() -> Path:
    value = os.environ.get("PIPELINE_DATA_MIRROR")
    if value and Path(value).is_dir():
        return Path(value).resolve()
    message = "real-data test needs PIPELINE_DATA_MIRROR pointing at a data mirror (../shared/data)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def tracking_store(tmp_path, monkeypatch):
    """A throw-away MLflow store, so tests never write into the project's mlruns/: made here
    with its Default experiment's artifacts in tmp_path (MLflow would put them in ./mlruns of
    whatever the working folder is)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    SqlAlchemyStore(uri, str(tmp_path / "artifacts")).engine.dispose()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # in this process too: a URI an earlier test set with mlflow.set_tracking_uri wins over the env
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def run_module(
    module: str, *args: str, cwd: Path = ROOT, env: dict | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """``python -m <module> args`` in a subprocess, as a user would run it."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_bench(script: str, *args: str, mirror: Path, cwd: Path = ROOT, timeout: int = 1200):
    """``python bench/<script> args`` on the real data (the mirror), as the README runs it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=cwd,
        env={**os.environ, "PIPELINE_DATA_MIRROR": str(mirror)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def prepare_in(folder: Path, mirror: Path, dataset: str) -> Path:
    """``folder`` with ``dataset`` prepared in its data/ (what the stages read)."""
    result = run_module(
        "pipeline.prepare", f"dataset={dataset}", cwd=folder, env={"PIPELINE_DATA_MIRROR": str(mirror)}
    )
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture(scope="module")
def prepared(mirror, tmp_path_factory) -> Path:
    """A working folder with California housing prepared in data/ (what the stages read)."""
    return prepare_in(tmp_path_factory.mktemp("work"), mirror, "california_housing")


def run_stages(name: str, workdir: Path, env: dict, *overrides: str) -> dict:
    """prepare -> train -> evaluate in ``workdir``; the metrics file evaluate writes."""
    for stage in ("pipeline.prepare", "pipeline.train", "pipeline.evaluate"):
        result = run_module(stage, f"experiment={name}", *overrides, cwd=workdir, env=env)
        assert result.returncode == 0, f"{stage}: {result.stderr[-3000:]}"
    return json.loads((workdir / f"metrics/{name}.json").read_text())


@pytest.fixture
def env(mirror, tracking_store):
    """What a stage run on the real data needs: the mirror and a throw-away MLflow store."""
    return {"PIPELINE_DATA_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": tracking_store}


def wait_until_answering(process: subprocess.Popen, url: str, log: Path, seconds: int = 180) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if the server exits first."""
    import time

    import requests

    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {seconds} s"
        time.sleep(1)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True: its own process group (gunicorn or
    uvicorn workers included), never the test's."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def copy_project(dest: Path) -> Path:
    """A copy of the project's tracked files (no outputs, no venv), as a fresh git repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


# --- configs and made-up data shared by the unit tests ------------------------------------------


@functools.cache
def _composed():
    from pipeline import config

    return config.compose()


@pytest.fixture(scope="session")
def composed():
    """conf/ composed once for the session (read-only: use experiment_cfg to change a copy)."""
    return _composed()


def experiment_cfg(name: str, **train):
    """A private copy of one experiment's composed config, with ``train`` keys overridden."""
    from pipeline import config

    cfg = copy.deepcopy(config.experiment_config(_composed(), name))
    for key, value in train.items():
        cfg.train[key] = value
    return cfg


@pytest.fixture
def fit_callbacks(monkeypatch):
    """The callbacks of every ``training.fit`` call during the test, one list per fit, in order."""
    from pipeline import training

    calls: list[list] = []
    real_fit = training.fit

    def recording_fit(*args, callbacks=(), **kwargs):
        calls.append(list(callbacks))
        return real_fit(*args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(training, "fit", recording_fit)
    return calls


@pytest.fixture(scope="module")
def images():
    """A tiny Fashion-MNIST look-alike: 10 classes whose images differ in brightness."""
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 10
        x = np.clip(rng.normal(y[:, None, None] * 20 + 30, 10, size=(n, 28, 28)), 0, 255)
        return x.astype("uint8"), y.astype("uint8")

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = make(400), make(100), make(100)
    return dict(
        x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid, x_test=x_test, y_test=y_test
    )


# --- optuna-dashboard ---------------------------------------------------------------------------


def dashboard_command(project: Path, port: int, **make_vars: str) -> list[str]:
    """The command `make dashboard` runs with these variables (read from `make -n`, so the test
    runs what the Makefile says)."""
    assignments = [f"{key}={value}" for key, value in {**make_vars, "PORT": str(port)}.items()]
    dry = subprocess.run(
        ["make", "-n", "-s", "dashboard", *assignments],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [line for line in dry.splitlines() if line.startswith("optuna-dashboard ")]
    return line.split()


def headless_chromium_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (Debian's package)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--dump-dom",
    ]
    return subprocess.run(
        [chromium, *flags, url], capture_output=True, text=True, timeout=120, check=True
    ).stdout


@contextlib.contextmanager
def dashboard(command: list[str], cwd: Path, log: Path, env: dict | None = None):
    """optuna-dashboard started as ``command`` (it binds 127.0.0.1); its URL, stopped after."""
    port = command[command.index("--port") + 1]
    bin_dir = str(Path(sys.executable).parent)
    command = [shutil.which(command[0], path=bin_dir) or command[0], *command[1:]]
    with log.open("w") as out:
        server = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {}), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(server, f"{url}/api/studies", log)
            yield url
        finally:
            stop_process_group(server)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing(message: str):
    """Fail under CI (a CI run must not pass by proving nothing), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl/createdb: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "createdb")):
            return folder
    return None


class Postgres:
    """A PostgreSQL cluster in a temporary folder: initdb, start on a loopback port, stop, remove.

    initdb and postgres refuse to run as root; as root, the cluster is run by the ``postgres``
    system user (created by Debian's package) through ``runuser``.
    """

    USER = "pipeline"  # the cluster's superuser (trust authentication, loopback only)

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir, self.port = bin_dir, free_port()
        self.as_user: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "running as root, and there is no `postgres` user to run the server "
                    "as (initdb refuses root); install Debian's postgresql package"
                )
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # not under pytest's tmp_path: its parents are private to root, the server user must enter
        self.root = Path(tempfile.mkdtemp(prefix="pipeline-postgres-", dir="/tmp" if owner else None))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.started = False

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*self.as_user, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )
        assert result.returncode == 0, f"{tool} failed:\n{result.stdout}{result.stderr}{self.server_log()}"
        return result

    def server_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", self.USER, "--auth=trust", "-E", "UTF8", "--no-locale")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        self.started = True  # from here on the finalizer stops it, whatever happens next
        self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")

    def createdb(self, name: str) -> str:
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, name)
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{name}"

    def add_login(self, user: str, password: str) -> None:
        """A role that must give its password over TCP (scram-sha-256; the rest stays trust)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        hba = self.data / "pg_hba.conf"  # the first matching line wins
        hba.write_text(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        self.run("pg_ctl", "reload", "-D", str(self.data))
        deadline = time.monotonic() + 30  # reload is a signal: wait until it took effect
        while True:
            try:
                psycopg.connect(
                    host="127.0.0.1", port=self.port, user=user, dbname="postgres", password=""
                ).close()
            except psycopg.OperationalError:
                return
            assert time.monotonic() < deadline, "pg_hba.conf was not reloaded in 30 s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.started and (self.data / "postmaster.pid").exists():
            stopped = subprocess.run(
                [
                    *self.as_user,
                    str(self.bin_dir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                ],
                capture_output=True,
                text=True,
                cwd=self.root,
            )
            if stopped.returncode != 0 and (self.data / "postmaster.pid").exists():
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, 9)  # the postmaster this fixture started, by its own pid file
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres():
    bin_dir = postgres_bin()
    if bin_dir is None:
        missing(
            "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        )
    server = Postgres(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
    assert not server.root.exists()


# --- an sshd on loopback (the DVC SSH remote test) ---------------------------------------------


@dataclasses.dataclass
class Sshd:
    port: int
    user: str
    key: Path  # the client's private key, the only way in
    home: Path  # a HOME whose .ssh/known_hosts holds this server's host key


@pytest.fixture
def sshd(tmp_path):
    """Debian's OpenSSH server on a free loopback port, key login only, as the current user;
    stopped after the test. Fails under CI without it (installed by .ci/run), skips elsewhere."""
    import getpass
    import socket
    import time

    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.access(binary, os.X_OK):
        message = "the OpenSSH server is not installed (apt-get install openssh-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path / "sshd"
    home = folder / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host_key = (folder / "host_key.pub").read_text().split()[:2]
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {folder / 'host_key'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                f"PidFile {folder / 'sshd.pid'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    log = folder / "sshd.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, f"sshd did not listen in 30 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield Sshd(port, getpass.getuser(), folder / "client_key", home)
    finally:
        stop_process_group(process)
