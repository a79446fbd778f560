"""Read a run's record on hosts over SSH from one process (paramiko), host keys checked.

While slots run detached, the controller only needs to read each host's record
(``<work>/runs/<run>/slots.json``, module_utils/fleetbench_slots.py) now and then. An
Ansible task per look would fork a worker and start Python on the host each time; one
short exec (``cat`` and ``date``) on a fresh paramiko connection costs neither, and a
bounded pool of threads polls hundreds of hosts with memory that does not grow with them.

The connection follows what Ansible would use: ``ansible_host``/``ansible_port``/
``ansible_user``/``ansible_ssh_private_key_file`` and the ``-o`` options, ``-i``, ``-p``
and ``-J`` of ``ansible_ssh_common_args``/``ansible_ssh_extra_args``, then
``~/.ssh/config``. Unknown host keys are refused, whatever the inventory says: a poll
never trusts a key that Ansible has not been given.
"""

from __future__ import annotations

import getpass
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from fleetbench.watch import Observation

# The roles' default work dir (fleetbench_work_dir); not a scratch file of ours.
DEFAULT_WORK_DIR = "/var/tmp/fleetbench"  # noqa: S108
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one host."""

    host: str
    hostname: str
    port: int = 22
    user: str = ""
    key_files: tuple[str, ...] = ()
    known_hosts: tuple[str, ...] = ()
    jump: Endpoint | None = None


def _ssh_options(args: str) -> dict[str, str]:
    """``-o Key=Value``, ``-i``, ``-p``, ``-J``, ``-l`` of an ssh argument string (keys
    lower-case)."""
    options: dict[str, str] = {}
    words = shlex.split(args or "")
    flags = {"-i": "identityfile", "-p": "port", "-J": "proxyjump", "-l": "user"}
    index = 0
    while index < len(words):
        word = words[index]
        value: str | None = None
        if word == "-o" and index + 1 < len(words):
            value, index = words[index + 1], index + 1
        elif word.startswith("-o") and len(word) > 2:
            value = word[2:]
        elif word in flags and index + 1 < len(words):
            options.setdefault(flags[word], words[index + 1])
            index += 1
        if value is not None:
            key, _, rest = value.replace("=", " ", 1).partition(" ")
            options.setdefault(key.lower(), rest.strip())
        index += 1
    return options


def endpoint(host: str, variables: Mapping[str, Any],
             ssh_config: paramiko.SSHConfig | None = None) -> Endpoint:
    """The endpoint of ``host`` from its inventory variables (and ``~/.ssh/config``)."""
    options = _ssh_options(" ".join(str(variables.get(name) or "") for name in (
        "ansible_ssh_common_args", "ansible_ssh_extra_args")))
    address = variables.get("ansible_host") or variables.get("ansible_ssh_host")
    looked_up: Mapping[str, Any] = ssh_config.lookup(str(address or host)) if ssh_config else {}
    hostname = str(address or looked_up.get("hostname") or host)
    port = (variables.get("ansible_port") or variables.get("ansible_ssh_port")
            or options.get("port") or looked_up.get("port") or 22)
    user = str(variables.get("ansible_user") or variables.get("ansible_ssh_user")
               or options.get("user") or looked_up.get("user") or getpass.getuser())
    keys = [str(k) for k in (variables.get("ansible_ssh_private_key_file"),
                             variables.get("ansible_private_key_file"),
                             options.get("identityfile")) if k]
    keys += list(looked_up.get("identityfile") or [])
    known = (options.get("userknownhostsfile") or " ".join(
        looked_up.get("userknownhostsfile", "").split()) or "").split()
    jump_spec = options.get("proxyjump") or looked_up.get("proxyjump") or ""
    jump = None
    if jump_spec and jump_spec.lower() != "none":
        # user@host:port of the first hop; further hops are left to ~/.ssh/config.
        first = jump_spec.split(",")[0]
        jump_user, _, rest = first.rpartition("@")
        jump_host, _, jump_port = rest.partition(":")
        jump = Endpoint(host=jump_host, hostname=jump_host, port=int(jump_port or 22),
                        user=jump_user or user, key_files=tuple(keys),
                        known_hosts=tuple(str(Path(k).expanduser()) for k in known))
    return Endpoint(
        host=host, hostname=hostname, port=int(port), user=user,
        key_files=tuple(str(Path(k).expanduser()) for k in keys),
        known_hosts=tuple(str(Path(k).expanduser()) for k in known), jump=jump)


def _client(point: Endpoint, sock: Any = None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_system_host_keys()  # ~/.ssh/known_hosts
    for path in point.known_hosts:
        if Path(path).exists():
            client.load_host_keys(path)
    # Never learn a key on the way: a host Ansible would refuse is refused here too.
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(point.hostname, port=point.port, username=point.user,
                   key_filename=list(point.key_files) or None,  # type: ignore[arg-type]  # str or list timeout=CONNECT_TIMEOUT_S,
                   banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S,
                   allow_agent=not point.key_files, look_for_keys=not point.key_files,
                   sock=sock)
    return client


def run_command(point: Endpoint, command: str) -> tuple[int, str, str]:
    """Run ``command`` on the host: (exit status, stdout, stderr). OSError/SSHException
    when the host cannot be reached."""
    clients: list[paramiko.SSHClient] = []
    try:
        sock = None
        if point.jump is not None:
            jump = _client(point.jump)
            clients.append(jump)
            transport = jump.get_transport()
            if transport is None:
                raise paramiko.SSHException(f"no connection to the jump host {point.jump.host}")
            sock = transport.open_channel("direct-tcpip", (point.hostname, point.port),
                                          ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT_S)
        client = _client(point, sock)
        clients.append(client)
        _stdin, stdout, stderr = client.exec_command(command, timeout=COMMAND_TIMEOUT_S)
        out = stdout.read().decode("utf-8", errors="replace")
        err = stderr.read().decode("utf-8", errors="replace")
        return stdout.channel.recv_exit_status(), out, err
    finally:
        for client in reversed(clients):
            client.close()


def record_command(work_dir: str, run_id: str) -> str:
    """The shell command that prints the run's record (nothing when absent), then the
    host's clock on a line of its own."""
    path = f"{work_dir.rstrip('/')}/runs/{run_id}/slots.json"
    return f"cat {shlex.quote(path)} 2>/dev/null; echo; date +%s"


def parse_answer(host: str, out: str) -> Observation:
    """The observation from what :func:`record_command` printed."""
    text, _, clock = out.rstrip("\n").rpartition("\n")
    try:
        host_clock: int | None = int(clock.strip())
    except ValueError:
        return Observation(host, reachable=True, error=f"unexpected answer: {out[-200:]!r}")
    record: Mapping[str, Any] | None = None
    if text.strip():
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            loaded = None  # caught mid-write by a reader without the rename: look again
        if isinstance(loaded, dict):
            record = loaded
        else:
            return Observation(host, reachable=True, error="the record could not be read",
                               host_clock=host_clock)
    return Observation(host, reachable=True, record=record, host_clock=host_clock)


class RecordPoller:
    """Looks at each host's record of one run (thread-safe; one connection per look)."""

    def __init__(self, run_id: str, host_vars: Mapping[str, Mapping[str, Any]]) -> None:
        config = paramiko.SSHConfig()
        user_config = Path("~/.ssh/config").expanduser()
        if user_config.exists():
            config = paramiko.SSHConfig.from_path(str(user_config))
        self.run_id = run_id
        self.endpoints = {host: endpoint(host, variables, config)
                          for host, variables in host_vars.items()}
        self.work_dirs = {host: str(variables.get("fleetbench_work_dir") or DEFAULT_WORK_DIR)
                          for host, variables in host_vars.items()}

    def __call__(self, host: str) -> Observation:
        """Look at ``host``'s record once."""
        try:
            status, out, err = run_command(self.endpoints[host],
                                           record_command(self.work_dirs[host], self.run_id))
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
            return Observation(host, reachable=False, error=describe(exc))
        if status != 0:
            return Observation(host, reachable=True,
                               error=f"reading the record exited {status}: {err.strip()[:200]}")
        return parse_answer(host, out)


def describe(exc: BaseException) -> str:
    """A one-line reason an SSH look failed."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"host key mismatch for {exc.hostname} (fix known_hosts; never ignored)"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return f"{exc} — add the host's key to known_hosts (host key checking stays on)"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
