"""`tinylm sweep --storage postgresql://...` against a real PostgreSQL server: workers sharing one study.

The fixture starts a throwaway cluster (initdb + pg_ctl, a socket and data in a temporary directory, a
free port on 127.0.0.1, trust authentication) and removes it afterwards. PostgreSQL refuses to run as
root, so as root (CI's fresh container) the server runs as the `postgres` user the Debian package
creates, or `nobody`. Skipped, with the reason, where the server binaries or the driver SQLAlchemy uses
for postgresql:// URLs (psycopg 3 since SQLAlchemy 2.1, psycopg2 before) are absent or the server
cannot start. CI installs `postgresql` (Debian) and `psycopg[binary]` (PyPI).
"""

import glob
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

import pytest

pytest.importorskip("optuna")

import optuna  # noqa: E402
import sqlalchemy  # noqa: E402  (optuna's own dependency)

pytestmark = pytest.mark.slow  # a server start and four CLI processes: ~30 s on two busy cores

TINY = ["--target-heads", "8", "--band", "0.25", "--layers", "1:4", "--width", "32", "--head-dim", "8:16:8",
        "--quiet", "--yes"]


def _server_bin() -> Path | None:
    """The server's bin directory (initdb, pg_ctl, createdb): pg_ctl's on PATH (links followed), else Debian's
    /usr/lib/postgresql/<version>/bin, the newest."""
    if shutil.which("pg_ctl") and (Path(shutil.which("pg_ctl")).resolve().parent / "initdb").exists():
        return Path(shutil.which("pg_ctl")).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _server_user() -> dict:
    """subprocess keywords that drop root: PostgreSQL will not start as root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": {"PATH": "/usr/bin:/bin"}}
    pytest.skip("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A database on a fresh PostgreSQL cluster, as a SQLAlchemy URL; the cluster is removed afterwards."""
    try:
        sqlalchemy.create_engine("postgresql://")  # imports the driver, connects to nothing
    except ImportError as e:
        pytest.skip(f"no PostgreSQL driver for SQLAlchemy ({e}): pip install 'psycopg[binary]'")
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_user = _server_user()
    home = Path(tempfile.mkdtemp(prefix="tinylm-pg-"))  # not under pytest's tmp: that is 0700 root's
    if "user" in as_user:
        os.chown(home, as_user["user"], as_user["group"])
    data, port = home / "data", _free_port()

    def pg(*argv):
        done = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60,
                              cwd=home, **as_user)
        if done.returncode:
            log = (home / "server.log").read_text()[-500:] if (home / "server.log").exists() else ""
            pytest.skip(f"PostgreSQL: {argv[0]} failed: {(done.stderr or done.stdout).strip()[-300:]} {log}")

    started = False
    try:
        pg("initdb", "-D", str(data), "-U", "tinylm", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(home / "server.log"), "-w", "-t", "30", "start")
        started = True
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tinylm", "sweeps")
        yield f"postgresql://tinylm@127.0.0.1:{port}/sweeps"
    finally:
        if started:
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, cwd=home, **as_user)
        shutil.rmtree(home, ignore_errors=True)


def _sweep(recipe, out, url, *extra, heartbeat=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if heartbeat:
        env["TINYLM_SWEEP_HEARTBEAT_S"] = str(heartbeat)
    argv = [sys.executable, "-m", "tinylm.cli.main", "sweep", str(recipe), "--out", str(out), "--storage", url,
            *TINY, *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _finish(proc, timeout=300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _log_steps(run_dir: Path) -> list[int]:
    import json
    return [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "loss" in r and "event" not in r]


def test_two_workers_share_one_study_and_run_each_trial_once(postgres_url, tiny_recipe, tmp_path):
    recipe, out = tiny_recipe(), tmp_path / "sweep"
    workers = [_sweep(recipe, out, postgres_url, "--trials", "4", "--budget", "4 steps", "--study", "shared")
               for _ in range(2)]
    outputs = [_finish(w) for w in workers]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4, outputs
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 4 and len({t.params["candidate"] for t in trials}) == 4  # no structure twice
    assert sorted(str(p.relative_to(out)) for p in (out / "trials").iterdir()) == sorted(run_dirs)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials
    for rel in run_dirs:  # each trained once: its log steps go up once, to the budget
        steps = _log_steps(out / rel)
        assert steps == sorted(set(steps)) and steps[-1] == 4, (rel, steps)


def test_a_killed_workers_trial_is_retried_once_its_heartbeat_stops(postgres_url, tiny_recipe, tmp_path):
    recipe = tiny_recipe("long", train={"duration": "120 steps", "log_every": 10}, eval={"every": 0},
                         checkpoint={"every": 10})
    out, args = tmp_path / "sweep", ("--trials", "1", "--study", "killed")
    first = _sweep(recipe, out, postgres_url, *args, heartbeat=1)
    deadline = time.monotonic() + 120
    while not list(out.glob("trials/*/checkpoints/step-*")):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[0]
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    (orphan,) = study.get_trials()
    assert orphan.state == optuna.trial.TrialState.RUNNING
    # As if the worker had run on another machine: no pid to check, only its silent heartbeat tells.
    study._storage.set_trial_user_attr(orphan._trial_id, "worker", "another-host:1")
    (run_dir,) = (out / "trials").iterdir()
    trained = max(_log_steps(run_dir), default=0)
    assert 0 < trained < 120

    time.sleep(max(0.0, 3 * 1 + 1 - (time.monotonic() - killed_at)))  # past the grace period (3 heartbeats)
    _finish(_sweep(recipe, out, postgres_url, *args, heartbeat=1))
    dead, retry = study.get_trials()
    assert dead.state == optuna.trial.TrialState.FAIL and "error" not in dead.user_attrs
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.user_attrs["retry_of"] == dead.number
    assert retry.params == dead.params and retry.user_attrs["run_dir"] == dead.user_attrs["run_dir"]
    assert list((out / "trials").iterdir()) == [run_dir]  # the same directory, resumed
    steps = _log_steps(run_dir)
    assert steps == sorted(set(steps)) and steps[-1] == 120  # from its checkpoint on, no step logged twice
