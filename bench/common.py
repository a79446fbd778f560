"""Plumbing shared by the benchmarks: the lab, timed runs, CPU and memory accounting, RESULTS.md.

Every figure is a ratio against a baseline measured in the same run, with the measurements
alternated and repeated (median), because other jobs may share the machine.

Connections start cold for every measurement (a fresh ControlPath folder; the ssh masters
it left are closed afterwards), as for a check run from cron. In the lab every "host" is
an sshd on this machine, so the targets' own work (Python start, amd-smi/rocm-smi
simulators, docker) competes with the controller for the same CPUs: the target CPU is
measured separately (CPU time of the lab's sshd trees) so the two can be told apart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = REPO / "bench" / "RESULTS.md"
#: Loopback range of the benchmark labs (other labs use 127.0.0-3.x).
FIRST_ADDRESS = "127.0.4.11"
DEFAULT_LAB_DIR = Path(tempfile.gettempdir()) / "fleetbench-bench-lab"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    """Progress, on stderr (figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def command_line() -> str:
    """The command that is producing these figures, to print and record."""
    return " ".join(shlex.quote(a) for a in [str(Path(sys.executable)), *sys.argv])


@dataclass(frozen=True)
class Machine:
    """Where and when the figures were taken."""

    date: str
    nproc: int
    memory_gib: int
    commit: str

    @classmethod
    def here(cls) -> Machine:
        """This machine, now, at the checkout's commit (``+dirty`` with local changes)."""
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                              capture_output=True, text=True, check=False)
        total = os.sysconf("SC_PHYS_PAGES") * PAGE
        return cls(
            date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            nproc=len(os.sched_getaffinity(0)),
            memory_gib=round(total / 2**30),
            commit=done.stdout.strip() or "unknown",
        )

    @property
    def label(self) -> str:
        """``nproc=2, 24 GiB``."""
        return f"nproc={self.nproc}, {self.memory_gib} GiB"


# --- the lab ------------------------------------------------------------------------------------


class Lab:
    """A benchmark lab: brought up here and taken down on exit, or an existing one reused."""

    def __init__(self, root: Path, hosts: int, first_address: str = FIRST_ADDRESS,
                 reuse: bool = False) -> None:
        self.root = root.resolve()
        self.wanted = hosts
        self.first_address = first_address
        self.reuse = reuse
        self.started = False
        self.names: list[str] = []
        self.addresses: dict[str, str] = {}
        self.sshd_pids: list[int] = []

    def __enter__(self) -> Lab:
        if not (self.reuse and (self.root / "lab.json").exists()):
            log(f"lab up: {self.wanted} hosts from {self.first_address} in {self.root}")
            done = subprocess.run(
                [str(BIN / "fleetbench"), "lab", "up", "--dir", str(self.root), "--hosts",
                 str(self.wanted), "--first-address", self.first_address],
                capture_output=True, text=True, check=False, timeout=900)
            self.started = True
            if done.returncode != 0:
                self.down()
                raise SystemExit(f"lab up failed:\n{done.stdout}\n{done.stderr}")
        data = json.loads((self.root / "lab.json").read_text())
        hosts = sorted(data["hosts"].values(), key=lambda h: h["name"])
        self.names = [h["name"] for h in hosts]
        self.addresses = {h["name"]: h["address"] for h in hosts}
        self.sshd_pids = [h["pid"] for h in hosts if h.get("pid")]
        if len(self.names) < self.wanted:
            raise SystemExit(f"the lab in {self.root} has {len(self.names)} hosts, "
                             f"{self.wanted} are needed")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.started:
            self.down()

    def down(self) -> None:
        """``fleetbench lab down``."""
        log(f"lab down: {self.root}")
        subprocess.run([str(BIN / "fleetbench"), "lab", "down", "--dir", str(self.root)],
                       capture_output=True, text=True, check=False, timeout=300)

    @property
    def inventory(self) -> Path:
        """The lab's inventory."""
        return self.root / "inventory.yml"

    def limit(self, count: int) -> str:
        """``--limit`` for the first ``count`` hosts."""
        return ",".join(self.names[:count])

    def target_cpu(self) -> float:
        """CPU seconds used so far by every finished SSH session on the lab's hosts."""
        total = 0
        for pid in self.sshd_pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[13]) + int(fields[14])  # cutime + cstime
        return total / CLOCK_TICKS


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment fleetbench gives Ansible: this checkout's ansible.cfg, this venv."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(extra or {})
    return env


class ColdConnections:
    """A fresh ControlPath folder for one measurement; its ssh masters closed afterwards."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fb-bench-cp-"))

    @property
    def env(self) -> dict[str, str]:
        """What points Ansible's ssh at the folder."""
        return {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.folder)}

    def close(self) -> None:
        """Ask every master to exit (their sessions end, the lab's sshd reaps them)."""
        sockets = [p for p in self.folder.iterdir() if p.is_socket()]
        procs = [subprocess.Popen(["/usr/bin/ssh", "-o", f"ControlPath={s}", "-O", "exit", "x"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for s in sockets]
        for proc in procs:
            proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(p.is_socket() for p in self.folder.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let the lab's sshd listeners reap the sessions
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class Sample:
    """One timed command."""

    name: str
    wall: float
    rc: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    controller_cpu: float = 0.0
    target_cpu: float = 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, argv: Sequence[str], lab: Lab | None, env: Mapping[str, str] | None = None,
          timeout: float = 1800) -> Sample:
    """Run ``argv`` on cold connections; wall time, controller CPU and target CPU."""
    connections = ColdConnections()
    try:
        full_env = ansible_env({**(env or {}), **connections.env})
        cpu0 = _children_cpu()
        target0 = lab.target_cpu() if lab else 0.0
        start = time.perf_counter()
        done = subprocess.run(list(argv), env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        wall = time.perf_counter() - start
        controller = _children_cpu() - cpu0
    finally:
        connections.close()
    target = (lab.target_cpu() - target0) if lab else 0.0
    return Sample(name, wall, done.returncode, done.stdout, done.stderr, controller, target)


def alternate(commands: Mapping[str, Sequence[str]], reps: int, lab: Lab | None,
              check: Mapping[str, object] | None = None) -> dict[str, list[Sample]]:
    """Run every command ``reps`` times, rotating the order each round."""
    names = list(commands)
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            sample = timed(name, commands[name], lab)
            validate = (check or {}).get(name)
            if callable(validate):
                validate(sample)
            elif sample.rc != 0:
                raise SystemExit(f"{name} failed (rc {sample.rc}):\n{sample.stdout[-2000:]}\n"
                                 f"{sample.stderr[-2000:]}")
            log(f"  {name}: {sample.wall:.2f} s (controller CPU {sample.controller_cpu:.1f} s, "
                f"target CPU {sample.target_cpu:.1f} s)")
            samples[name].append(sample)
    return samples


def median(values: Sequence[float]) -> float:
    """The median (the middle of 3 runs)."""
    return statistics.median(values)


# --- controller memory --------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        table[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]),
                                  cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return table


def _kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


@dataclass
class MemoryPeak:
    """Peaks of the controller's process tree."""

    rss_kib: int = 0  # sum of VmRSS (counts pages shared by forked workers once per worker)
    pss_kib: int = 0  # sum of Pss (shared pages split between their users: real memory)
    processes: int = 0
    samples: int = 0


class TreeSampler(threading.Thread):
    """Samples VmRSS and Pss of ``pid`` and its descendants (plus its ssh masters)."""

    def __init__(self, pid: int, also: str | None = None, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.also = also  # ssh masters daemonise: matched by their ControlPath folder
        self.interval = interval
        self.peak = MemoryPeak()
        self._halt = threading.Event()

    def tree(self) -> list[int]:
        """The process and every descendant, plus processes whose command line has ``also``."""
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            if pid in table:
                found.append(pid)
            todo.extend(children.get(pid, []))
        if self.also:
            found += [p for p, (_, cmd) in table.items() if self.also in cmd and p not in found]
        return found

    def run(self) -> None:
        while not self._halt.is_set():
            pids = self.tree()
            rss = sum(_kib(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids)
            pss = sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids)
            peak = self.peak
            peak.rss_kib, peak.pss_kib = max(peak.rss_kib, rss), max(peak.pss_kib, pss)
            peak.processes = max(peak.processes, len(pids))
            peak.samples += 1
            self._halt.wait(self.interval)

    def stop(self) -> MemoryPeak:
        """Stop sampling; the peaks."""
        self._halt.set()
        self.join()
        return self.peak


# --- RESULTS.md -----------------------------------------------------------------------------------

HEADER = """# Benchmark results

Written by the scripts in `bench/` (`/work/venv/bin/python bench/run_all.py` runs them all);
each section is replaced when its benchmark runs again. Every ratio is measured against a
baseline taken in the same run, alternating and repeating the measurements (median).
"""


@dataclass(frozen=True)
class Section:
    """One benchmark's table in RESULTS.md."""

    key: str
    title: str
    command: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        """The section as Markdown, between markers that identify it."""
        lines = [f"<!-- bench:{self.key} -->", f"## {self.title}", "",
                 f"Command: `{self.command}`", "",
                 "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        lines.append(f"<!-- /bench:{self.key} -->")
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        """The section for the terminal."""
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) for i, c in enumerate(self.columns)]
        out = [self.title, "  command: " + self.command,
               "  " + "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        out += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True))
                for row in self.rows]
        out += [f"  - {note}" for note in self.notes]
        return "\n".join(out)


ORDER = ("fanout", "naive", "pipeline", "forks", "report", "memory", "watch_memory", "distribution",
         "tuning")


def main_over_sizes(doc: str, run: Callable[[Lab, list[int], int, Machine], Section],
                    reps: int) -> int:
    """The command line of a benchmark measured at several lab sizes (--sizes, --reps,
    --lab): one lab of the largest size, the section recorded."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default="10,30,60", help="host counts (default 10,30,60)")
    parser.add_argument("--reps", type=int, default=reps,
                        help=f"rounds per size (default {reps})")
    parser.add_argument("--lab", type=Path, help="reuse a running lab in this folder")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    machine = Machine.here()
    with Lab(args.lab or DEFAULT_LAB_DIR, max(sizes), reuse=args.lab is not None) as lab:
        record(run(lab, sizes, args.reps, machine))
    return 0


def record(section: Section) -> None:
    """Print ``section`` and write it into RESULTS.md (replacing its previous version)."""
    print(section.text(), flush=True)
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    blocks = dict(_blocks(text))
    blocks[section.key] = section.markdown()
    keys = [k for k in ORDER if k in blocks] + sorted(k for k in blocks if k not in ORDER)
    RESULTS.write_text(HEADER + "\n" + "\n".join(blocks[k] for k in keys))


def _blocks(text: str) -> Iterator[tuple[str, str]]:
    for match in re.finditer(r"(?s)<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->\n", text):
        yield match.group(1), match.group(0)


def fmt(value: float, digits: int = 2) -> str:
    """A number for a table."""
    return f"{value:.{digits}f}"


def verdict(ok: bool) -> str:
    """The met? column."""
    return "yes" if ok else "**no**"
