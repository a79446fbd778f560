"""Processes the lab runs on this machine: one sshd per host, the Docker engine, a registry.

Everything here talks only to 127.0.0.0/8. The Docker engine is started without a
bridge and without iptables rules, so containers can only use host networking.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fleetbench import scratch
from fleetbench.errors import LabError

# Debian package for every binary the lab needs, so a missing one is named with its fix.
REQUIRED_BINARIES: dict[str, str] = {
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ssh-keyscan": "openssh-client",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "docker-registry": "docker-registry",
    "git": "git",
    "busybox": "busybox-static",
    "bash": "bash",
}

REGISTRY_ADDRESS = "127.0.0.1:5000"
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def find_binary(name: str) -> str | None:
    """Path of ``name`` on PATH or in the sbin folders (sshd lives there)."""
    extra = os.pathsep.join(_SBIN_DIRS)
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)


def require_binaries(names: tuple[str, ...] = tuple(REQUIRED_BINARIES)) -> dict[str, str]:
    """Resolve every binary the lab needs or fail naming the Debian packages to install."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        path = find_binary(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        packages = sorted({REQUIRED_BINARIES[name] for name in missing})
        raise LabError(
            f"the lab needs {', '.join(missing)}, which is not installed — "
            f"install it with: apt-get install -y {' '.join(packages)}"
        )
    return found


def port_open(address: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``address:port``."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(predicate_name: str, check: object, timeout: float, interval: float = 0.1) -> None:
    """Poll ``check()`` until it is true or raise LabError after ``timeout`` seconds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {predicate_name}")


def pid_alive(pid: int | None) -> bool:
    """True when a process with ``pid`` exists (and is not a zombie we own)."""
    if not pid or not scratch.alive(pid):
        return False
    try:  # a zombie still answers kill(0); reap it if it is our child
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
    if done == pid:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd's per-connection children start sessions of their
    own, so killing the process group would leave them, and open connections, alive)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _freeze_tree(pid: int) -> list[int]:
    """SIGSTOP ``pid`` and every process below it, until no new one appears; the frozen
    descendants. A frozen sshd accepts and forks nothing, so no connection made while it
    is being stopped (an ssh client retrying at once) can outlive it."""
    os.kill(pid, signal.SIGSTOP)
    frozen: list[int] = []
    while new := [child for child in descendants(pid) if child not in frozen]:
        for child in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGSTOP)
        frozen.extend(new)
    return frozen


def stop_process(pid: int | None, timeout: float = 10.0) -> None:
    """Stop ``pid`` and everything below it: SIGTERM, then SIGKILL after ``timeout``."""
    if not pid_alive(pid):
        return
    assert pid is not None
    try:
        children = _freeze_tree(pid)
    except ProcessLookupError:
        return
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def spawn(argv: list[str], log: Path) -> int:
    """Start a long-running service detached from our session, logging to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


# --- Docker engine ---------------------------------------------------------------------


def docker_engine_answers() -> bool:
    """True when the local Docker engine answers ``docker info``."""
    docker = find_binary("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0 and bool(probe.stdout.strip())


def start_docker_engine(state_dir: Path) -> int | None:
    """Start ``dockerd`` (no bridge, no iptables) unless one answers; return its pid if started."""
    if docker_engine_answers():
        return None
    dockerd = require_binaries(("dockerd",))["dockerd"]
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = spawn(
        [
            dockerd,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--pidfile",
            str(state_dir / "dockerd.pid"),
        ],
        state_dir / "dockerd.log",
    )
    wait_for("the Docker engine to answer", docker_engine_answers, timeout=60, interval=0.5)
    return pid


# --- Registry ----------------------------------------------------------------------------


def registry_answers(address: str = REGISTRY_ADDRESS) -> bool:
    """True when a Docker registry answers ``GET /v2/`` on ``address``."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {address}
"""


def start_registry(state_dir: Path, address: str = REGISTRY_ADDRESS) -> int | None:
    """Start Debian's ``docker-registry`` on ``address`` unless one answers; pid if started."""
    if registry_answers(address):
        return None
    binary = require_binaries(("docker-registry",))["docker-registry"]
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=state_dir / "data", address=address))
    pid = spawn([binary, "serve", str(config)], state_dir / "registry.log")
    wait_for(f"the registry on {address}", lambda: registry_answers(address), timeout=30)
    return pid


def start_hub(state_dir: Path) -> tuple[int, int]:
    """Start the lab's stand-in Hugging Face hub on a free port of 127.0.0.1; (pid, port)."""
    import sys

    state_dir.mkdir(parents=True, exist_ok=True)
    port_file = state_dir / "port"
    port_file.unlink(missing_ok=True)
    pid = spawn([sys.executable, "-m", "fleetbench.lab.hub", str(state_dir)],
                state_dir / "hub.log")
    wait_for("the lab's Hugging Face hub", port_file.exists, timeout=30)
    port = int(port_file.read_text())
    wait_for(f"the lab's Hugging Face hub on 127.0.0.1:{port}",
             lambda: port_open("127.0.0.1", port), timeout=30)
    return pid, port


# --- sshd per host ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SshdHost:
    """Where one lab host's sshd listens and keeps its files."""

    name: str
    address: str
    port: int
    host_dir: Path
    authorized_keys: Path

    @property
    def host_key(self) -> Path:
        """Private host key of this host (its own, never shared)."""
        return self.host_dir / "ssh_host_ed25519_key"

    @property
    def home(self) -> Path:
        """Home folder of the lab user on this host."""
        return self.host_dir / "home"

    @property
    def config(self) -> Path:
        """sshd_config of this host."""
        return self.host_dir / "sshd_config"


def sshd_config_text(host: SshdHost, path_dirs: list[str]) -> str:
    """An sshd_config for one lab host: key auth only, its own PATH with the GPU simulators."""
    user_path = ":".join([*path_dirs, "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"])
    return "\n".join(
        [
            f"ListenAddress {host.address}:{host.port}",
            f"HostKey {host.host_key}",
            f"PidFile {host.host_dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {host.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            # The lab directory may live under /tmp with loose modes: keys are ours anyway.
            "StrictModes no",
            "PrintMotd no",
            "UseDNS no",
            # A fleet controller opens many sessions at once; the default 10:30:100 drops them.
            "MaxStartups 200:30:400",
            "MaxSessions 200",
            # Each host its own home: its own ~/.ansible, and none of this machine's shell
            # start-up files (which may do slow, lock-taking work on every SSH command).
            f"SetEnv PATH={user_path} HOME={host.home} FLEETBENCH_LAB_HOST={host.name}",
            "Subsystem sftp internal-sftp",
            "LogLevel ERROR",
            "",
        ]
    )


def generate_key(path: Path, comment: str) -> None:
    """Create an ed25519 key pair at ``path`` unless it exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [require_binaries(("ssh-keygen",))["ssh-keygen"], "-q", "-t", "ed25519", "-N", "",
         "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def start_sshd(host: SshdHost, path_dirs: list[str]) -> int:
    """Start (or keep) the sshd of ``host``; returns its pid."""
    pid_file = host.host_dir / "sshd.pid"
    if pid_file.exists():
        old = int(pid_file.read_text().strip() or 0)
        if pid_alive(old) and port_open(host.address, host.port):
            return old
    if port_open(host.address, host.port):
        raise LabError(
            f"{host.address}:{host.port} is already taken by another process — stop it or "
            "choose other addresses with --first-address"
        )
    generate_key(host.host_key, f"fleetbench-lab-{host.name}")
    host.home.mkdir(mode=0o700, exist_ok=True)
    host.config.write_text(sshd_config_text(host, path_dirs))
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
    sshd = require_binaries(("sshd",))["sshd"]
    check = subprocess.run([sshd, "-t", "-f", str(host.config)], capture_output=True, text=True,
                           check=False)
    if check.returncode != 0:
        raise LabError(f"sshd rejected the configuration of {host.name}: {check.stderr.strip()}")
    pid = spawn([sshd, "-D", "-f", str(host.config), "-E", str(host.host_dir / "sshd.log")],
                host.host_dir / "sshd.out")
    wait_for(f"sshd of {host.name} on {host.address}:{host.port}",
             lambda: port_open(host.address, host.port), timeout=15)
    return pid


def known_hosts_line(host: SshdHost) -> str:
    """The known_hosts entry of ``host``, built from its public host key file."""
    public = (host.host_key.with_suffix(".pub")).read_text().split()
    return f"[{host.address}]:{host.port} {public[0]} {public[1]}"
