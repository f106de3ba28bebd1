"""The fork server: a child per job, its exit status, its output, its timeout, and no job outliving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from esper.forkserver import ForkServer, esper_pythonpath
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
JOBS = "tests.support.forked_jobs"


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([esper_pythonpath(), str(REPO)])}
    with ForkServer((JOBS,), env=env, name="test-forks") as forks:
        yield forks


def test_a_job_runs_in_a_child_of_its_own_with_its_environment_and_output(server: ForkServer, tmp_path: Path) -> None:
    out, err, marks = tmp_path / "out.txt", tmp_path / "err.txt", tmp_path / "pid.txt"
    done = server.run(
        f"{JOBS}:write_pid", [str(marks)], env={"ESPER_TEST_VALUE": "seen"}, stdout=out, stderr=err, timeout=60
    )
    assert done.ok and done.returncode == 0
    pid, group, value = marks.read_text().split()
    assert int(pid) != os.getpid() and int(group) == int(pid), "the child leads its own process group"
    assert value == "seen"
    assert out.read_text() == "to stdout\n" and err.read_text() == "to stderr\n"


def test_the_exit_code_a_signal_and_an_exception_come_back(server: ForkServer, tmp_path: Path) -> None:
    assert server.run(f"{JOBS}:exit_with", ["5"], timeout=60).returncode == 5
    crashed = server.run(f"{JOBS}:crash", timeout=60)
    assert crashed.returncode == -11 and crashed.describe() == "killed by SIGSEGV"
    err = tmp_path / "err.txt"
    failed = server.run(f"{JOBS}:raise_error", stderr=err, timeout=60)
    assert failed.returncode == 1 and "the job failed on purpose" in err.read_text()


def test_limits_apply_to_the_child(server: ForkServer) -> None:
    assert server.run(f"{JOBS}:cpu_seconds_limit", limits={"RLIMIT_CPU": 30}, timeout=60).returncode == 7


def test_a_child_past_its_timeout_is_killed(server: ForkServer, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    done = server.run(f"{JOBS}:sleep_forever", [str(pid_file)], timeout=1.0)
    assert done.timed_out and not done.ok and done.returncode == -9
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()


def test_closing_the_server_kills_its_children_and_ends_waiting_runs(tmp_path: Path) -> None:
    import threading

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([esper_pythonpath(), str(REPO)])}
    forks = ForkServer((JOBS,), env=env, name="closing")
    pid_file = tmp_path / "pid"
    results = []
    waiting = threading.Thread(
        target=lambda: results.append(forks.run(f"{JOBS}:sleep_forever", [str(pid_file)], timeout=600))
    )
    waiting.start()
    pid = int(eventually(lambda: pid_file.exists() and pid_file.read_text(), timeout=60))
    forks.close()
    waiting.join(30)
    assert not waiting.is_alive() and not results[0].ok and results[0].stopped
    eventually(lambda: not Path(f"/proc/{pid}").exists(), what=f"child {pid} gone")


def test_a_run_after_close_is_stopped_not_failed() -> None:
    forks = ForkServer((), name="closed")
    forks.close()
    done = forks.run(f"{JOBS}:exit_with", ["0"])
    assert done.stopped and not done.ok and done.describe() == "stopped with its fork server"


def test_a_timeout_shorter_than_the_fork_still_kills_the_child(server: ForkServer, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    done = server.run(f"{JOBS}:sleep_forever", [str(pid_file)], timeout=0.0001)
    assert done.timed_out and not done.ok
    if pid_file.exists():  # it may have been killed before it wrote its pid
        assert not Path(f"/proc/{int(pid_file.read_text())}").exists()
