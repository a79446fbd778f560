"""A simulated MI300X fleet on one machine: ``fleetbench lab up|set|status|down``.

Layout of a lab directory::

    DIR/lab.json              what `up` started and created (so `down` removes exactly that)
    DIR/inventory.yml         usable by fleetbench and by plain ansible-playbook
    DIR/known_hosts           every host's own host key (host key checking stays on)
    DIR/ssh/id_ed25519        the lab user's key
    DIR/hosts/<name>/         sshd config + host key, GPU state, sysfs/KFD root, bin/ simulators,
                              bench.env (the stand-in benchmark's behaviour)
    DIR/registry/  DIR/docker/  DIR/mad/
    DIR/hub/                  the stand-in Hugging Face hub: its port, log and download counts
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import ipaddress
import json
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetbench.errors import LabError
from fleetbench.lab import (
    DEFAULT_FIRST_ADDRESS,
    DEFAULT_PORT,
    disk,
    gpu,
    hub,
    image,
    mad,
    services,
    smi,
)

LAB_FILE = "lab.json"
BENCH_MODES = ("ok", "fail", "hang", "slow")
# perf_csv=missing plants a perf step that fails after every report was written: MAD's
# script then exits 1 from its final mv. fail_after: points measured before bench=fail.
PERF_CSV = ("written", "missing")
BENCH_KEYS = ("bench", "factor", "slow_s", "fail_after", "perf_csv", "garbage")
# garbage=slot3[,slot5]: those slots' model answers garbage (the correctness probe's fault);
# garbage=none: every slot answers well.
_GARBAGE = re.compile(r"^(none|slot[0-9]+(,slot[0-9]+)*)$")
SSHD_KEY = "sshd"
GPU_STATE_FILE = "gpu-state.json"


@dataclass
class LabHost:
    """One simulated host as recorded in ``lab.json``."""

    name: str
    address: str
    pid: int | None = None


@dataclass
class Lab:
    """What ``lab up`` created; saved to ``DIR/lab.json``."""

    root: Path
    port: int = DEFAULT_PORT
    user: str = field(default_factory=getpass.getuser)
    hosts: dict[str, LabHost] = field(default_factory=dict)
    docker_pid: int | None = None
    registry_pid: int | None = None
    image: str = ""
    mad_repo: str = ""
    mad_refs: dict[str, str] = field(default_factory=dict)
    hub_pid: int | None = None
    hub_port: int | None = None

    # --- persistence -------------------------------------------------------------------

    @classmethod
    def load(cls, root: Path) -> Lab:
        """Read ``root/lab.json``; LabError when there is no lab there."""
        path = root / LAB_FILE
        if not path.exists():
            raise LabError(f"no lab in {root} — create one with: fleetbench lab up --dir {root}")
        data = json.loads(path.read_text())
        hosts = {name: LabHost(**host) for name, host in data.pop("hosts").items()}
        return cls(root=root, hosts=hosts, **{k: v for k, v in data.items() if k != "root"})

    def save(self) -> None:
        """Write ``lab.json`` atomically."""
        data = {
            "port": self.port,
            "user": self.user,
            "hosts": {n: vars(h) for n, h in self.hosts.items()},
            "docker_pid": self.docker_pid,
            "registry_pid": self.registry_pid,
            "image": self.image,
            "mad_repo": self.mad_repo,
            "mad_refs": self.mad_refs,
            "hub_pid": self.hub_pid,
            "hub_port": self.hub_port,
        }
        tmp = self.root / (LAB_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.root / LAB_FILE)

    # --- paths ---------------------------------------------------------------------------

    @property
    def inventory(self) -> Path:
        """The lab's Ansible inventory."""
        return self.root / "inventory.yml"

    @property
    def known_hosts(self) -> Path:
        """known_hosts with every lab host's key."""
        return self.root / "known_hosts"

    @property
    def user_key(self) -> Path:
        """Private key of the lab user."""
        return self.root / "ssh" / "id_ed25519"

    def host_dir(self, name: str) -> Path:
        """Folder of one simulated host."""
        return self.root / "hosts" / name

    def sshd_host(self, host: LabHost) -> services.SshdHost:
        """The sshd description of ``host``."""
        return services.SshdHost(
            name=host.name,
            address=host.address,
            port=self.port,
            host_dir=self.host_dir(host.name),
            authorized_keys=self.root / "ssh" / "authorized_keys",
        )

    @property
    def hub_dir(self) -> Path:
        """State of the stand-in Hugging Face hub (port, log, downloads.json)."""
        return self.root / "hub"

    def hub_endpoint(self, host: str) -> str:
        """HF_ENDPOINT of ``host``: the lab hub, with a path that tells its downloads apart."""
        return f"http://{hub.ADDRESS}:{self.hub_port}/lab/{host}"

    def host(self, name: str) -> LabHost:
        """The host called ``name``; LabError naming the lab's hosts otherwise."""
        if name not in self.hosts:
            raise LabError(
                f"no host {name!r} in the lab at {self.root} — hosts: {', '.join(self.hosts)}"
            )
        return self.hosts[name]


def host_names(count: int, first_address: str) -> list[tuple[str, str]]:
    """``(labNN, address)`` pairs on consecutive loopback addresses."""
    if count < 1 or count > 200:
        raise LabError(f"--hosts must be between 1 and 200, not {count}")
    start = ipaddress.IPv4Address(first_address)
    if not start.is_loopback or not (start + count - 1).is_loopback:
        raise LabError(f"lab hosts must live in 127.0.0.0/8; {first_address} + {count} leaves it")
    return [(f"lab{i + 1:02d}", str(start + i)) for i in range(count)]


# --- bench.env: how the stand-in benchmark behaves on a host -------------------------------


def read_bench_env(host_dir: Path) -> dict[str, str]:
    """The host's bench.env as a dict."""
    path = host_dir / "bench.env"
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def write_bench_env(host_dir: Path, values: Mapping[str, str]) -> None:
    """Rewrite the host's bench.env (read by the stand-in MAD script in the container)."""
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    tmp = host_dir / "bench.env.tmp"
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(host_dir / "bench.env")


def _bench_settings(settings: Mapping[str, str], current: dict[str, str]) -> dict[str, str]:
    updated = dict(current)
    for key, value in settings.items():
        if key == "bench":
            if value not in BENCH_MODES:
                raise LabError(f"bench={value} is not a mode — use one of {', '.join(BENCH_MODES)}")
            updated["mode"] = value
        elif key == "perf_csv":
            if value not in PERF_CSV:
                raise LabError(f"perf_csv={value} — use perf_csv=written or perf_csv=missing")
            updated[key] = value
        elif key == "garbage":
            if not _GARBAGE.match(value):
                raise LabError(f"garbage={value} — name slots, e.g. garbage=slot3 or "
                               "garbage=slot1,slot3, or garbage=none")
            updated[key] = value
        elif key == "fail_after":
            if not value.isdigit():
                raise LabError(f"fail_after={value} is not a count of points — e.g. fail_after=3")
            updated[key] = str(int(value))
        else:
            try:
                number = float(value)
            except ValueError:
                raise LabError(f"{key}={value} is not a number — e.g. {key}=0.8") from None
            if number <= 0:
                raise LabError(f"{key} must be positive, not {value}")
            updated[key] = value
    return updated


# --- inventory -------------------------------------------------------------------------------


def inventory_data(lab: Lab) -> dict[str, Any]:
    """The lab inventory: real SSH with host key checking on, per-host sysfs root."""
    hosts: dict[str, Any] = {}
    for host in lab.hosts.values():
        host_dir = lab.host_dir(host.name)
        hosts[host.name] = {
            "ansible_host": host.address,
            "fleetbench_sysfs_root": str(host_dir / "root"),
            "fleetbench_rocm_path": str(host_dir / "root" / "opt" / "rocm"),
            "fleetbench_container_volumes": [
                f"{host_dir / 'bench.env'}:/fleetbench-lab/bench.env:ro"
            ],
            "fleetbench_work_dir": str(host_dir / "work"),
            # Docker's data root as preflight's disk planning sees it: this machine's disk,
            # or a tmpfs of the size `lab set HOST disk_free_gb=N` asks for.
            "fleetbench_disk_path": str(disk.disk_dir(host_dir)),
            # Stand-in /dev/kfd and render nodes (render-nodes GPU isolation).
            "fleetbench_device_root": str(host_dir / "root"),
            # The model step downloads from the lab's hub (per-host path: counted per host).
            "fleetbench_hf_endpoint": lab.hub_endpoint(host.name),
            # All lab hosts share this machine's Docker engine: only containers that mount
            # this host's files are this host's (partition apply refuses while they run).
            "fleetbench_container_filters": [f"volume={host_dir / 'bench.env'}"],
        }
    return {
        "all": {
            "vars": {
                "ansible_user": lab.user,
                "ansible_port": lab.port,
                "ansible_ssh_private_key_file": str(lab.user_key),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes "
                    "-o IdentitiesOnly=yes"
                ),
                # The lab's hosts are this machine; its venv has what community.docker needs.
                "ansible_python_interpreter": sys.executable,
                "fleetbench_image": lab.image,
                "fleetbench_mad_repo": lab.mad_repo,
                "fleetbench_mad_ref": "v-era-d",
                # No /dev/kfd or /dev/dri here: the stand-in image needs no GPU devices.
                "fleetbench_container_devices": [],
                # Lab hosts share one disk and write little: a small margin over the image
                # and the model (disk_free_gb=N makes a host short).
                "fleetbench_disk_margin_gb": 1,
                # The lab's SSH user already owns the simulators; sudo's secure_path would
                # also hide them (they are on the lab sshd's PATH only).
                "fleetbench_become": False,
            },
            "children": {
                "lab": {
                    "vars": {
                        "fleetbench_expected_compute": "CPX",
                        "fleetbench_expected_memory": "NPS4",
                    },
                    "hosts": hosts,
                }
            },
        }
    }


def write_inventory(lab: Lab) -> None:
    """Write ``inventory.yml`` and ``known_hosts`` for the current hosts."""
    header = "# Written by `fleetbench lab up`: a simulated MI300X fleet on loopback addresses.\n"
    lab.inventory.write_text(header + yaml.safe_dump(inventory_data(lab), sort_keys=False))
    lines = [services.known_hosts_line(lab.sshd_host(h)) for h in lab.hosts.values()]
    lab.known_hosts.write_text("\n".join(lines) + "\n")


# --- up / down / set / status ---------------------------------------------------------------------


def up(root: Path, hosts: int = 3, first_address: str = DEFAULT_FIRST_ADDRESS,
       port: int = DEFAULT_PORT) -> Lab:
    """Bring up (or complete) a lab of ``hosts`` simulated MI300X hosts in ``root``."""
    services.require_binaries()
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    wanted = host_names(hosts, first_address)
    lab = Lab.load(root) if (root / LAB_FILE).exists() else Lab(root=root, port=port)
    # An address another process holds is told before anything starts (no hub or engine
    # left behind by a lab that could not come up).
    for name, address in wanted:
        if name not in lab.hosts and services.port_open(address, lab.port):
            raise LabError(f"{address}:{lab.port} is already taken by another process — stop "
                           "it or choose other addresses with --first-address")

    if lab.docker_pid is None or not services.pid_alive(lab.docker_pid):
        lab.docker_pid = services.start_docker_engine(root / "docker")
    if lab.registry_pid is None or not services.pid_alive(lab.registry_pid):
        lab.registry_pid = services.start_registry(root / "registry")
    if lab.hub_pid is None or not services.pid_alive(lab.hub_pid):
        lab.hub_pid, lab.hub_port = services.start_hub(lab.hub_dir)
    lab.save()
    if not lab.image:
        lab_id = "lab-" + hashlib.sha256(str(root).encode()).hexdigest()[:8]
        lab.image = image.publish_lab_image(image.lab_image_ref(lab_id))
        lab.save()
    if not lab.mad_repo:
        repo = mad.create_mad_repo(root / "mad")
        lab.mad_repo = f"file://{repo.path}"
        lab.mad_refs = dict(repo.refs)
        lab.save()

    services.generate_key(lab.user_key, "fleetbench-lab-user")
    authorized = root / "ssh" / "authorized_keys"
    authorized.write_text(lab.user_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)

    for name in [n for n in lab.hosts if n not in dict(wanted)]:
        _remove_host(lab, name)
    for name, address in wanted:
        host = lab.hosts.setdefault(name, LabHost(name=name, address=address))
        host_dir = lab.host_dir(name)
        host_dir.mkdir(parents=True, exist_ok=True)
        state_file = host_dir / GPU_STATE_FILE
        if not state_file.exists():
            smi.install_host(host_dir, gpu.GpuState(), sys.executable)
            write_bench_env(host_dir, {"host": name, "mode": "ok", "factor": "1.0", "slow_s": "2"})
        disk.disk_dir(host_dir).mkdir(exist_ok=True)
        host.pid = services.start_sshd(lab.sshd_host(host), [str(host_dir / "bin")])
        lab.save()
    write_inventory(lab)
    lab.save()
    return lab


def _remove_host(lab: Lab, name: str) -> None:
    services.stop_process(lab.hosts[name].pid)
    disk.unmount(lab.host_dir(name))
    shutil.rmtree(lab.host_dir(name), ignore_errors=True)
    del lab.hosts[name]


def _delete_from_registry(ref: str) -> None:
    registry, rest = ref.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    head = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD",
        headers={"Accept": accept},
    )
    try:
        with urllib.request.urlopen(head, timeout=5) as response:  # noqa: S310
            digest = response.headers.get("Docker-Content-Digest")
        if digest:
            delete = urllib.request.Request(
                f"http://{registry}/v2/{repository}/manifests/{digest}", method="DELETE"
            )
            urllib.request.urlopen(delete, timeout=5).close()  # noqa: S310
    except (urllib.error.URLError, OSError):
        pass  # already gone, or the registry is down: nothing left to remove


def down(root: Path) -> None:
    """Stop and remove everything ``up`` started and created in ``root``. Idempotent."""
    root = root.resolve()
    if not (root / LAB_FILE).exists():
        return
    lab = Lab.load(root)
    _remove_lab_containers(lab)
    for name in list(lab.hosts):
        _remove_host(lab, name)
    if lab.image:
        if lab.registry_pid is None and services.registry_answers():
            _delete_from_registry(lab.image)
        if services.docker_engine_answers():
            image.remove_lab_image(lab.image)
    services.stop_process(lab.registry_pid)
    services.stop_process(lab.hub_pid)
    services.stop_process(lab.docker_pid, timeout=30)
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _remove_lab_containers(lab: Lab) -> None:
    """Remove fleetbench containers that still mount this lab's files."""
    if not services.docker_engine_answers():
        return
    import docker  # only needed when an engine answers

    client = docker.from_env()
    try:
        # One listing call with the mounts: inspecting each listed container in turn races
        # with other runs on the engine removing theirs (404 on a container just listed).
        for container in client.api.containers(all=True, filters={"label": "fleetbench.run"}):
            mounts = container.get("Mounts") or []
            if any(str(m.get("Source", "")).startswith(str(lab.root)) for m in mounts):
                with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile
                    client.api.remove_container(container["Id"], force=True)
    finally:
        client.close()


def set_host(root: Path, name: str, assignments: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` settings to host ``name``; returns its new status."""
    lab = Lab.load(root.resolve())
    host = lab.host(name)
    host_dir = lab.host_dir(name)
    settings: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise LabError(f"{item!r} is not key=value — e.g. compute=SPX memory=NPS1")
        settings[key.strip()] = value.strip()
    allowed = (*gpu.GPU_SETTING_KEYS, *BENCH_KEYS, SSHD_KEY, disk.DISK_KEY)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise LabError(f"unknown setting {', '.join(unknown)} — use: {', '.join(allowed)}")

    gpu_settings = {k: v for k, v in settings.items() if k in gpu.GPU_SETTING_KEYS}
    if gpu_settings:
        # Under the host's lock, like the simulated tools' own changes.
        with gpu.state_lock(host_dir):
            state = gpu.GpuState.load(host_dir / GPU_STATE_FILE).with_settings(gpu_settings)
            state.save(host_dir / GPU_STATE_FILE)
            smi.render_host(host_dir, state)
    if disk.DISK_KEY in settings:
        disk.set_free(host_dir, settings[disk.DISK_KEY])
    bench = {k: v for k, v in settings.items() if k in BENCH_KEYS}
    if bench:
        write_bench_env(host_dir, _bench_settings(bench, read_bench_env(host_dir)))
    if SSHD_KEY in settings:
        wanted = settings[SSHD_KEY]
        if wanted == "stopped":
            services.stop_process(host.pid)
            host.pid = None
        elif wanted == "running":
            host.pid = services.start_sshd(lab.sshd_host(host), [str(host_dir / "bin")])
        else:
            raise LabError(f"sshd={wanted} — use sshd=stopped or sshd=running")
        lab.save()
    return host_status(lab, host)


def host_status(lab: Lab, host: LabHost) -> dict[str, Any]:
    """What a person wants to see of one lab host."""
    host_dir = lab.host_dir(host.name)
    state = gpu.GpuState.load(host_dir / GPU_STATE_FILE)
    running = services.pid_alive(host.pid) and services.port_open(host.address, lab.port)
    return {
        "name": host.name,
        "address": f"{host.address}:{lab.port}",
        "sshd": "running" if running else "stopped",
        "gpu": dataclasses.asdict(state),
        "bench": read_bench_env(host_dir),
        "disk": disk.status(host_dir),
    }


def status(root: Path) -> dict[str, Any]:
    """The whole lab's status."""
    lab = Lab.load(root.resolve())
    return {
        "dir": str(lab.root),
        "inventory": str(lab.inventory),
        "docker": "running" if services.docker_engine_answers() else "stopped",
        "registry": "running" if services.registry_answers() else "stopped",
        "image": lab.image,
        "mad_repo": lab.mad_repo,
        "hosts": [host_status(lab, h) for h in lab.hosts.values()],
    }

