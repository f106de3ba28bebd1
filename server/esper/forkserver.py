"""A warm interpreter that forks a fresh child for every job.

Starting Python and importing torch takes seconds (far more on a loaded machine);
forking a process that has already imported it takes milliseconds. `ForkServer`
starts one such interpreter, the zygote (`python -m esper.forkserver`), with the
environment and resource limits its children get, has it import `preload`, and then
asks it for one child per job: the child runs `module:function(*args)` and exits
with what it returns. Every job has a process of its own, so process-wide state
(torch.export's tracer, a kernel that corrupts memory) dies with it, and the process
that asks never runs the job's code or holds a lock the job takes.

The zygote only imports and forks: it never runs a torch op, so no thread pool
exists when it forks. Each child leads its own process group (a compiler it starts
is killed with it) and the zygote kills every child still running when the asking
process closes its pipe or dies.

Protocol, one JSON object a line, on the zygote's stdin and stdout:
  -> {"job": N, "target": "pkg.module:function", "args": [...], "cwd": ..., "env": {...},
      "limits": {"RLIMIT_CPU": ...}, "stdout": PATH, "stderr": PATH}
  <- {"ready": true}                 once `preload` is imported
  <- {"job": N, "pid": PID}          once the child is forked
  <- {"job": N, "returncode": RC}    when it ends (negative: the signal that ended it)
  <- {"job": N, "error": "..."}      when it could not be forked
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import esper

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_REAP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ChildExit:
    """How a job's child ended: its exit code (negative: killed by that signal), or why there is none."""

    returncode: int | None
    timed_out: bool = False
    error: str = ""
    # The server was closed before the child finished: the job was cut short, not faulty.
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return "killed after its timeout"
        if self.stopped:
            return "stopped with its fork server"
        if self.returncode is None:
            return self.error or "ended without an exit status"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"killed by {name}"
        return f"exited with code {self.returncode}"


@dataclass
class _Job:
    process: subprocess.Popen[bytes]
    done: threading.Event = field(default_factory=threading.Event)
    forked: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    returncode: int | None = None
    error: str = ""
    stopped: bool = False


def esper_pythonpath() -> str:
    """Where a fresh interpreter finds Esper's three source roots (generated, server, clients)."""
    return os.pathsep.join(str(Path(path).parent) for path in esper.__path__)


class ForkServer:
    """One zygote and the jobs it forks; `run()` is thread-safe, `close()` kills what still runs.

    `env` is the zygote's whole environment (default: this process's, with Esper's
    roots on PYTHONPATH); `limits` are resource limits (`resource.RLIMIT_*` names,
    soft and hard alike) the zygote lowers for itself and so for every child before
    anything is imported. The zygote starts on the first `run()` (or `start()`) and
    again if it died.
    """

    def __init__(
        self,
        preload: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        limits: Mapping[str, int] | None = None,
        name: str = "forkserver",
        start_timeout_seconds: float = 300.0,
    ) -> None:
        self.preload = tuple(preload)
        self.name = name
        self._env = dict(env) if env is not None else _inherited_env()
        self._cwd = cwd
        self._limits = dict(limits or {})
        self._start_timeout = start_timeout_seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._jobs: dict[int, _Job] = {}
        self._next_job = 0
        self._closed = False

    def start(self) -> None:
        """Start the zygote now (it imports `preload` in the background)."""
        with self._lock:
            self._ensure_started()

    def run(
        self,
        target: str,
        args: Sequence[str] = (),
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        limits: Mapping[str, int] | None = None,
        stdout: Path | None = None,
        stderr: Path | None = None,
        timeout: float | None = None,
    ) -> ChildExit:
        """Run `target` ("pkg.module:function", called with `args`) in a fresh child and wait for it.

        `env` is added to the child's environment, `limits` lowered in the child only,
        `stdout`/`stderr` name files for its output (default: discarded). A child that
        outlives `timeout` seconds is killed with its process group.
        """
        with self._lock:
            if self._closed:
                return ChildExit(None, error=f"{self.name}: closed", stopped=True)
            process = self._ensure_started()
            ready = self._ready
        if not ready.wait(self._start_timeout) or process.poll() is not None:
            return ChildExit(None, error=f"{self.name}: the fork server did not start", stopped=self._closed)
        request = {
            "target": target,
            "args": [str(arg) for arg in args],
            "cwd": str(cwd) if cwd is not None else None,
            "env": dict(env or {}),
            "limits": dict(limits or {}),
            "stdout": str(stdout) if stdout is not None else None,
            "stderr": str(stderr) if stderr is not None else None,
        }
        job = _Job(process)
        with self._lock:
            if self._process is not process or self._closed:
                return ChildExit(None, error=f"{self.name}: the fork server stopped", stopped=self._closed)
            job_id = self._next_job
            self._next_job += 1
            self._jobs[job_id] = job
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps({"job": job_id, **request}).encode() + b"\n")
                process.stdin.flush()
            except OSError as exc:
                self._jobs.pop(job_id, None)
                return ChildExit(None, error=f"{self.name}: the fork server is gone ({exc})")
        if job.done.wait(timeout):
            return ChildExit(job.returncode, error=job.error, stopped=job.stopped)
        # The child may be forked but not yet announced: kill it once its pid is known.
        job.forked.wait(_REAP_GRACE_SECONDS)
        self._kill(job)
        job.done.wait(_REAP_GRACE_SECONDS)
        return ChildExit(job.returncode, timed_out=True)

    def close(self) -> None:
        """Stop the zygote; it kills every child still running. Waiting `run()` calls return at once."""
        with self._lock:
            self._closed = True
            process = self._process
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(_REAP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The zygote

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        """The live zygote, started if there is none. Lock held."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        config = json.dumps({"preload": list(self.preload), "limits": self._limits})
        process = subprocess.Popen(
            [sys.executable, "-m", "esper.forkserver", config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            close_fds=True,
        )
        self._process = process
        self._ready = threading.Event()
        reader = threading.Thread(
            target=self._read, args=(process, self._ready), name=f"{self.name}-reader", daemon=True
        )
        reader.start()
        logger.debug("%s: zygote %d started (preload %s)", self.name, process.pid, ", ".join(self.preload))
        return process

    def _read(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                logger.warning("%s: unreadable line from the zygote: %r", self.name, line[:200])
                continue
            if message.get("ready"):
                ready.set()
                continue
            with self._lock:
                job = self._jobs.get(message.get("job", -1))
                if job is None:
                    continue
                if "pid" in message:
                    job.pid = int(message["pid"])
                    job.forked.set()
                    continue
                self._jobs.pop(message["job"], None)
            job.returncode = message.get("returncode")
            job.error = message.get("error", "")
            job.done.set()
        process.wait()
        ready.set()  # waiters see the process ended
        with self._lock:
            orphans = {job_id: job for job_id, job in self._jobs.items() if job.process is process}
            for job_id in orphans:
                del self._jobs[job_id]
            closed = self._closed
        for job in orphans.values():
            job.error = f"{self.name}: the fork server ended (exit {process.returncode})"
            job.stopped = closed
            job.done.set()

    def _kill(self, job: _Job) -> None:
        if job.pid is None:
            return
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            logger.warning("%s: cannot kill child %d", self.name, job.pid)


def _inherited_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [esper_pythonpath(), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Zygote side


def apply_limits(limits: Mapping[str, int]) -> None:
    """Lower this process's resource limits, soft and hard alike, so it cannot raise them again."""
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


_PROTOCOL_FD = 1


def _send(message: dict[str, Any]) -> None:
    os.write(_PROTOCOL_FD, json.dumps(message).encode() + b"\n")


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the job, run it, exit with its code. Never returns."""
    code = 1
    try:
        os.close(_PROTOCOL_FD)
        os.setpgid(0, 0)
        apply_limits(request.get("limits") or {})
        _redirect(0, os.devnull, os.O_RDONLY)
        _redirect(1, request.get("stdout") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        _redirect(2, request.get("stderr") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        os.environ.update(request.get("env") or {})
        import tempfile

        tempfile.tempdir = None  # TMPDIR may have changed
        module_name, _, function_name = request["target"].partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(*request.get("args", []))
        code = int(result or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _redirect(fd: int, path: str, flags: int) -> None:
    target = os.open(path, flags, 0o600)
    os.dup2(target, fd)
    os.close(target)


def _fork(request: dict[str, Any]) -> int:
    pid = os.fork()
    if pid == 0:
        _child(request)
    # The child makes itself a group leader too, but a kill may come before it gets there:
    # set here, its group exists before its pid is announced, so killpg never misses it.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    return pid


def _reap(children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        job = children.pop(pid, None)
        if job is not None:
            _send({"job": job, "returncode": os.waitstatus_to_exitcode(status)})


def _serve(preload: Sequence[str]) -> int:
    for name in preload:
        importlib.import_module(name)
    _send({"ready": True})
    children: dict[int, int] = {}
    pending = b""
    reading = True
    while reading:
        readable, _, _ = select.select([0], [], [], _POLL_SECONDS)
        if readable:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                reading = False
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    _start(json.loads(line), children)
        _reap(children)
    # The asking process is gone or closed the pipe: nothing it asked for may outlive it.
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return 0


def _start(request: dict[str, Any], children: dict[int, int]) -> None:
    job = int(request["job"])
    try:
        pid = _fork(request)
    except OSError as exc:
        _send({"job": job, "error": f"fork failed: {exc}"})
        return
    children[pid] = job
    _send({"job": job, "pid": pid})


def main(argv: Sequence[str] | None = None) -> int:
    global _PROTOCOL_FD
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m esper.forkserver CONFIG_JSON (started by esper.forkserver.ForkServer)", file=sys.stderr)
        return 2
    config = json.loads(args[0])
    apply_limits(config.get("limits") or {})
    # The protocol keeps the pipe on fd 1 to itself: whatever an import prints goes to stderr.
    _PROTOCOL_FD = os.dup(1)
    os.dup2(2, 1)
    return _serve(config.get("preload") or [])


if __name__ == "__main__":
    sys.exit(main())
