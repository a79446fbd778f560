"""Hands the Hugging Face token to the run's own Ansible workers without a file.

ansible-runner writes extravars, envvars and the inherited environment to disk, so the
token can go through none of them, and a token file on the controller outlives a
controller that is killed. Instead fleetbench serves the token, for the length of the run,
on a Unix socket in a private (0700) folder. The benchmark role's ``fleetbench_token``
lookup reads it from there in the worker that hands it to a host (with ``no_log``). Only
this user's processes that descend from this fleetbench get an answer. Nothing secret is
ever at rest: when fleetbench ends, however it ends, the token is gone with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from fleetbench import scratch
from fleetbench.secrets import Secret

FOLDER_PREFIX = "fleetbench-token-"
SOCKET_NAME = "socket"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@contextlib.contextmanager
def serve_token(token: Secret) -> Iterator[Path]:
    """Serve ``token`` on a Unix socket while the block runs; yields the socket's path."""
    with scratch.folder(FOLDER_PREFIX) as folder:
        path = folder / SOCKET_NAME
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stop = threading.Event()
        thread = threading.Thread(target=_serve, args=(server, token, stop),
                                  name="fleetbench-token", daemon=True)
        try:
            server.bind(str(path))
            path.chmod(0o600)
            server.listen(256)
            server.settimeout(0.2)  # how soon the thread notices the end of the run
            thread.start()
            yield path
        finally:
            stop.set()
            if thread.is_alive():
                thread.join(timeout=5)
            server.close()


def _serve(server: socket.socket, token: Secret, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        except OSError:
            return  # closed
        with conn:
            conn.settimeout(5)
            if allowed_peer(conn):
                with contextlib.suppress(OSError):
                    conn.sendall(token.reveal().encode())


def allowed_peer(conn: socket.socket) -> bool:
    """True when the connecting process is this user's and descends from this process
    (ansible-playbook's workers do; another login of the same user does not)."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return False
    pid, uid, _ = _PEERCRED.unpack(raw)
    return uid == os.getuid() and descends_from(pid, os.getpid())


def descends_from(pid: int, ancestor: int, proc: Path = Path("/proc")) -> bool:
    """True when ``ancestor`` is ``pid``'s parent, grand-parent, …, read from ``proc``."""
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return False
        # "pid (comm) state ppid …": comm may hold spaces and parentheses.
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False
