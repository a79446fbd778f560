"""Model distribution on the lab: N hosts x 8 slots, per-slot downloads against the host cache.

Every variant runs bench/distribution.yml through ansible-playbook on the same lab hosts,
against a stand-in hub started here with weights of --weights-mib MiB (the lab's own hub
serves 3 MiB), caches emptied before each measurement:

- baseline, per slot: the behaviour before the host cache. Each of a host's 8 slots
  downloads the model into a cache of its own as it starts, all 8 at once: 8 containers of
  the run's image running the model role's own download script (the real huggingface_hub
  client) against the host's hub endpoint;
- host cache: the model role, one download per host, throttled by model_download_throttle
  (8, the default, and 2, to show the throttle's effect), then the same again on the
  filled cache (a second run);
- --model-from: the model role sending the snapshot of a controller-side cache (filled
  once from the hub) over SSH instead.

Bytes are what the hub counted per host (its counter) or, for --model-from, what landed
in the hosts' caches; "at once" is the most download containers (per-slot) or hosts
downloading (host cache) seen running together, sampled from the Docker engine every
0.2 s. Time and bytes are ratios against the per-slot baseline of the same round
(median of --reps alternating rounds). Usage::

    /work/venv/bin/python bench/distribution.py [--sizes 4,8] [--reps 3] [--weights-mib 64]
        [--lab DIR] [--first-address 127.0.4.11]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml
from huggingface_hub import snapshot_download

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the bench folder is not a package
    BIN,
    DEFAULT_LAB_DIR,
    FIRST_ADDRESS,
    REPO,
    Lab,
    Machine,
    Section,
    command_line,
    fmt,
    log,
    median,
    record,
    timed,
    verdict,
)

from fleetbench.lab.hub import read_downloads
from fleetbench.modelsync import resolve_model_snapshot

MODEL = "Qwen/Qwen2.5-7B"  # not gated: no token in the way of either variant
SLOTS = 8
PLAYBOOK = REPO / "bench" / "distribution.yml"
# The goal of the host cache: one download per host instead of one per slot.
GOAL_BYTES = 1 / SLOTS
# The lab's hub keeps http.server's listen backlog of 5: 8 slots x N hosts connecting at once
# overflow it (dropped SYNs, the client's connect timeouts) where a real hub would not.
HUB = """
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path
from fleetbench.lab.hub import make_server
ThreadingHTTPServer.request_queue_size = 256
state, weights = Path(sys.argv[1]), int(sys.argv[2])
server = make_server(state, weights_bytes=weights)
(state / "port.tmp").write_text(str(server.server_address[1]))
(state / "port.tmp").replace(state / "port")
server.serve_forever()
"""


class BenchHub:
    """A stand-in hub with weights of a chosen size, in a process of its own."""

    def __init__(self, state: Path, weights_bytes: int) -> None:
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", HUB, str(state), str(weights_bytes)],
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (state / "port").exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the bench hub did not start")
            time.sleep(0.05)
        self.port = int((state / "port").read_text())

    def endpoint(self, client: str) -> str:
        """The hub's URL for one client (downloads are counted per client)."""
        return f"http://127.0.0.1:{self.port}/lab/{client}"

    def bytes_by_client(self) -> dict[str, int]:
        """Bytes served so far per client."""
        counts = read_downloads(self.state)
        return {client: int(repos.get(MODEL, {}).get("bytes", 0))
                for client, repos in counts.items()}

    def stop(self) -> None:
        """End the hub process."""
        self.proc.terminate()
        self.proc.wait(timeout=10)


class AtOnce(threading.Thread):
    """The most download containers of one run, and of its hosts, running together."""

    def __init__(self, run_id: str) -> None:
        super().__init__(daemon=True)
        self.run_id = run_id
        self.containers = 0
        self.hosts = 0
        self._halt = threading.Event()

    def run(self) -> None:
        client = docker.from_env()
        try:
            while not self._halt.is_set():
                # The list alone (no inspect per container: they come and go meanwhile).
                running = client.api.containers(
                    filters={"label": f"fleetbench.run={self.run_id}"})
                self.containers = max(self.containers, len(running))
                self.hosts = max(self.hosts, len({(c.get("Labels") or {}).get("fleetbench.host")
                                                  for c in running}))
                self._halt.wait(0.2)
        finally:
            client.close()

    def stop(self) -> AtOnce:
        """Stop sampling."""
        self._halt.set()
        self.join()
        return self


@dataclass(frozen=True)
class Measure:
    """One variant measured once."""

    wall: float
    bytes: int
    containers: int
    hosts: int


@dataclass(frozen=True)
class Setup:
    """What every measurement of one size shares."""

    lab: Lab
    hosts: list[str]
    inventory: Path
    hub: BenchHub
    model_from: Path


def _work(lab: Lab, host: str) -> Path:
    return lab.root / "hosts" / host / "work"


def _empty_caches(setup: Setup) -> None:
    for host in setup.hosts:
        for folder in ("hf-cache", "bench-per-slot"):
            shutil.rmtree(_work(setup.lab, host) / folder, ignore_errors=True)


def _cached_bytes(setup: Setup) -> int:
    total = 0
    for host in setup.hosts:
        blobs = _work(setup.lab, host) / "hf-cache" / "hub"
        total += sum(p.stat().st_size for p in blobs.glob("models--*/blobs/*") if p.is_file())
    return total


def measure(setup: Setup, mode: str, *, throttle: int = 8, send: bool = False,
            warm: bool = False) -> Measure:
    """One run of bench/distribution.yml over the setup's hosts."""
    if not warm:
        _empty_caches(setup)
    run_id = f"bench-distribution-{secrets.token_hex(3)}"
    extravars: dict[str, Any] = {"distribution_mode": mode, "fleetbench_run_id": run_id,
                                 "model_download_throttle": throttle}
    if send:
        extravars["model_from"] = resolve_model_snapshot(setup.model_from, MODEL).to_extravar()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extravars, handle)
    before = setup.hub.bytes_by_client()
    sampler = AtOnce(run_id)
    sampler.start()
    try:
        sample = timed(f"{mode}", [str(BIN / "ansible-playbook"), "-i", str(setup.inventory),
                                   "--limit", ",".join(setup.hosts), "-e", f"@{handle.name}",
                                   str(PLAYBOOK)], setup.lab)
    finally:
        sampler.stop()
        Path(handle.name).unlink()
    if sample.rc != 0:
        raise SystemExit(f"{mode} failed (rc {sample.rc}):\n{sample.stdout[-3000:]}")
    after = setup.hub.bytes_by_client()
    served = sum(after.get(h, 0) - before.get(h, 0) for h in setup.hosts)
    moved = _cached_bytes(setup) if send and not warm else served
    log(f"  {mode} throttle={throttle} send={send} warm={warm}: {sample.wall:.2f} s, "
        f"{moved / 2**20:.0f} MiB, at once {sampler.containers} containers / "
        f"{sampler.hosts} hosts")
    return Measure(sample.wall, moved, sampler.containers, sampler.hosts)


VARIANTS: dict[str, Callable[[Setup], Measure]] = {
    "per-slot": lambda s: measure(s, "per_slot"),
    "host cache, throttle 8": lambda s: measure(s, "host_cache", throttle=8),
    "host cache, throttle 2": lambda s: measure(s, "host_cache", throttle=2),
    "--model-from, throttle 8": lambda s: measure(s, "host_cache", throttle=8, send=True),
}


def _inventory(lab: Lab, hub: BenchHub, folder: Path) -> Path:
    """The lab's inventory with every host's hub endpoint at the bench hub."""
    inventory = yaml.safe_load(lab.inventory.read_text())
    for group in inventory["all"]["children"].values():
        for name, host in group.get("hosts", {}).items():
            host["fleetbench_hf_endpoint"] = hub.endpoint(name)
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_size(setup: Setup, reps: int) -> dict[str, list[Measure]]:
    """Every variant ``reps`` times, the order rotated each round; the warm host-cache run
    right after each cold one."""
    names = list(VARIANTS)
    found: dict[str, list[Measure]] = {n: [] for n in [*names, "host cache, second run"]}
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            found[name].append(VARIANTS[name](setup))
            if name == "host cache, throttle 8":
                found["host cache, second run"].append(
                    measure(setup, "host_cache", throttle=8, warm=True))
    _empty_caches(setup)
    return found


def section(results: dict[int, dict[str, list[Measure]]], weights_mib: int, reps: int,
            machine: Machine) -> Section:
    """The RESULTS.md section."""
    rows = []
    for count, found in results.items():
        base = found["per-slot"]
        base_wall = median([m.wall for m in base])
        base_bytes = median([m.bytes for m in base])
        for name, measures in found.items():
            wall = median([m.wall / b.wall for m, b in zip(measures, base, strict=True)])
            moved = median([m.bytes for m in measures])
            ratio = moved / base_bytes if base_bytes else 0.0
            goal = (f"≤ {GOAL_BYTES:.3f}" if name == "host cache, throttle 8" else
                    "0 bytes" if name == "host cache, second run" else "(info)")
            met = (verdict(ratio <= GOAL_BYTES + 1e-9) if name == "host cache, throttle 8"
                   else verdict(moved == 0) if name == "host cache, second run" else "—")
            at_once = (f"{max(m.containers for m in measures)} containers"
                       if name == "per-slot" else
                       f"{max(m.hosts for m in measures)} hosts" if "--model-from" not in name
                       else "—")
            rows.append((
                f"{count} x {SLOTS}", name,
                fmt(median([m.wall for m in measures]), 1) if name != "per-slot"
                else fmt(base_wall, 1),
                fmt(wall) if name != "per-slot" else "1.00",
                f"{moved / 2**20:.0f}", fmt(ratio, 3) if name != "per-slot" else "1.000",
                goal, met, at_once, machine.date, machine.label, machine.commit))
    notes = (
        f"Model: {MODEL} from a stand-in hub serving {weights_mib} MiB of weights plus its "
        f"config.json; median of {reps} alternating rounds, every cache emptied before each "
        "measurement except the second run's; time ratio = the variant's wall time over "
        "the per-slot baseline of the same round.",
        "MiB moved: what the hub served to the hosts (its per-client counter); for "
        "--model-from, what was sent over SSH into the hosts' caches (the hub served "
        "nothing). Per-slot moves the model once per slot, the host cache once per host: "
        f"1/{SLOTS} of the bytes.",
        "At once: the most download containers (per-slot) or hosts downloading (host "
        "cache) seen running together, sampled from the Docker engine every 0.2 s. The "
        "throttle caps the hosts pulling on the hub at once; on the lab the hub is on "
        "loopback and shares the 2 CPUs with every host, so throttling only makes the step "
        "longer here, while on a fleet it keeps hundreds of hosts from saturating the "
        "hub's link or its rate limits (README, Fleets of 500+ hosts).",
        "Per-slot downloads run with the client's timeouts raised from 10 to 120 s: with "
        "the default, some of 64 clients at once (8 hosts) timed out against the lab's one "
        "hub process and their hosts failed; the host cache's downloads keep the default.",
        "Wall times are as noisy as the machine is shared (other jobs' load changes from "
        "one measurement to the next; --reps alternates and takes the median); the bytes "
        "are exact.",
        "The lab's hosts share one Docker engine and one disk: per-slot time is bounded by "
        "this machine's CPUs starting N x 8 containers and writing N x 8 copies, a host "
        "cache's by N containers and N copies.",
    )
    return Section(
        key="distribution",
        title="Model distribution: N hosts x 8 slots, per-slot downloads vs the host cache",
        command=command_line(),
        columns=("N", "variant", "wall (s)", "time ratio", "MiB moved", "bytes ratio",
                 "goal (bytes)", "met?", "at once", "date", "machine", "commit"),
        rows=tuple(rows), notes=notes)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4,8", help="host counts (default 4,8)")
    parser.add_argument("--reps", type=int, default=3, help="rounds per size (default 3)")
    parser.add_argument("--weights-mib", type=int, default=64,
                        help="size of the stand-in model's weights (default 64)")
    parser.add_argument("--lab", type=Path, help="reuse a running lab in this folder")
    parser.add_argument("--first-address", default=FIRST_ADDRESS,
                        help=f"first host address of a new lab (default {FIRST_ADDRESS})")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    machine = Machine.here()
    results: dict[int, dict[str, list[Measure]]] = {}
    with (Lab(args.lab or DEFAULT_LAB_DIR, max(sizes), args.first_address,
              reuse=args.lab is not None) as lab,
          tempfile.TemporaryDirectory(prefix="fb-bench-distribution-") as scratch):
        folder = Path(scratch)
        hub = BenchHub(folder / "hub", args.weights_mib * 2**20)
        try:
            inventory = _inventory(lab, hub, folder)
            model_from = folder / "controller-cache"
            snapshot_download(MODEL, cache_dir=model_from, endpoint=hub.endpoint("controller"))
            for count in sizes:
                log(f"{count} hosts x {SLOTS} slots")
                setup = Setup(lab, lab.names[:count], inventory, hub, model_from)
                results[count] = run_size(setup, args.reps)
        finally:
            hub.stop()
            for host in lab.names:
                token = _work(lab, host) / "lock" / "hf_token"
                token.unlink(missing_ok=True)
    record(section(results, args.weights_mib, args.reps, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
