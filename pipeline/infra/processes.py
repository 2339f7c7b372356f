"""Detached service processes tracked by pid files.

``infra up`` and ``infra down`` run in different Python processes, so a service is known
only by its pid file. A pid alone is not proof (pids are reused), so every check also
looks at the live process's command line for a *marker*: an argument unique to this data
directory (its config or storage path). Linux only: it reads ``/proc``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from pipeline.config import UserError

# Popen handles of children started by this Python process: kept so they are reaped (no
# zombies) when the same process also stops them, e.g. a pytest session.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Service:
    name: str
    pid_file: Path
    log_file: Path
    marker: str  # an argv element only our instance has

    def pid(self) -> int | None:
        """The pid of our running instance, or None (no pid file, dead, or pid reused)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self.marker in cmdline(pid) else None

    def forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)


def cmdline(pid: int) -> list[str]:
    """The argv of a live process; empty for a zombie or a missing pid."""
    _reap(pid)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def spawn(service: Service, argv: list[str], cwd: Path) -> int:
    """Start ``argv`` in its own session (so a Ctrl-C of the CLI does not reach it)."""
    service.log_file.parent.mkdir(parents=True, exist_ok=True)
    service.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with service.log_file.open("ab") as log:
        log.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    # Popen returns while the kernel is still finishing exec: /proc/<pid>/cmdline reads
    # empty for a few ms (measured ~3 ms), which would look like "not our process".
    deadline = time.monotonic() + 2.0
    while service.marker not in cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    tmp = service.pid_file.with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    tmp.replace(service.pid_file)  # atomic: a reader never sees a half-written pid
    return proc.pid


def stop(service: Service, timeout: float = 30.0) -> int | None:
    """SIGTERM our instance, SIGKILL it after ``timeout``; returns the pid it stopped."""
    pid = service.pid()
    if pid is None:
        service.forget()
        return None
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while service.pid() == pid and time.monotonic() < deadline:
        time.sleep(0.2)
    if service.pid() == pid:
        _signal(pid, signal.SIGKILL)
        while service.pid() == pid:
            time.sleep(0.1)
    service.forget()
    return pid


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # exited on its own meanwhile
        pass


def wait_ready(service: Service, pid: int, probe: Callable[[], bool], timeout: float, *, just_started: bool) -> None:
    """Poll ``probe`` until true; fail fast (naming the log) when the process dies.

    On timeout, a process this call just started is stopped (so ``up`` can simply be
    rerun); one found running is left alone.
    """
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if service.pid() != pid:
            service.forget()
            raise UserError(f"{service.name} exited during startup; see {service.log_file}")
        if time.monotonic() >= deadline:
            if just_started:
                stop(service, timeout=10)
            raise UserError(
                f"{service.name} (pid {pid}) not ready after {timeout:.0f}s"
                f"{' (stopped it)' if just_started else ''}; see {service.log_file}"
            )
        time.sleep(0.3)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, method: str = "GET") -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False
