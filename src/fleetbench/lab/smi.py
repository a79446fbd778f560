"""Simulated ``rocm-smi`` and ``amd-smi`` of a lab host.

They print what the real tools print for the host's state and ROCm version
(the captures in ``tests/fixtures/smi/``), and their set operations change the state
and re-render the sysfs/KFD tree under the host's lock. Texts not covered by a fixture are
reconstructed from the tools' source (rocm_smi.py, amdsmi_commands.py) and marked so.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from fleetbench.errors import LabError
from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState, LogicalGpu

TOOLS = ("rocm-smi", "amd-smi")


# --- plumbing shared by both tools -----------------------------------------------------


@dataclass(frozen=True)
class Console:
    """Where a simulated tool reads and writes (sys.* for the wrappers, buffers in tests)."""

    out: TextIO
    err: TextIO
    inp: TextIO

    def print(self, text: str = "", end: str = "\n") -> None:
        """Write to stdout and flush (progress bars must show while a set waits)."""
        self.out.write(text + end)
        self.out.flush()

    def error(self, text: str, end: str = "\n") -> None:
        """Write to stderr."""
        self.err.write(text + end)
        self.err.flush()


class CliExitError(Exception):
    """argparse wanted to exit (usage error, --help): the tool returns ``status``."""

    def __init__(self, status: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.stdout = stdout
        self.stderr = stderr


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of calling sys.exit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._help_text = ""

    def _print_message(self, message: str, file: object = None) -> None:
        self._help_text += message  # --help and --version: handed back through CliExitError

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Raise CliExitError carrying what argparse would have printed."""
        raise CliExitError(status, stdout=self._help_text, stderr=message or "")

    def error(self, message: str) -> NoReturn:
        """Raise CliExitError(2) with argparse's usage + error text."""
        raise CliExitError(2, stderr=f"{self.format_usage()}{self.prog}: error: {message}\n")


class SetStatus(enum.Enum):
    """What the driver answers to a partition change."""

    OK = "ok"
    NO_PERM = "no_perm"
    BUSY = "busy"
    UNAVAILABLE = "setting_unavailable"
    INVALID = "invalid"


def compute_status(state: GpuState, mode: str) -> SetStatus:
    """The driver's answer to ``current_compute_partition <- mode``."""
    if state.noperm:
        return SetStatus.NO_PERM
    if state.busy:
        return SetStatus.BUSY
    if mode not in gpu.COMPUTE_MODES or state.memory not in gpu.MEMORY_CAPS[mode]:
        return SetStatus.UNAVAILABLE
    return SetStatus.OK


def memory_status(state: GpuState, mode: str) -> SetStatus:
    """The driver's answer to an NPS change request."""
    if state.noperm:
        return SetStatus.NO_PERM
    if state.busy:
        return SetStatus.BUSY
    if mode not in gpu.MEMORY_MODES:
        return SetStatus.INVALID
    # SPX is switched to CPX by the driver (AMD docs); DPX cannot hold NPS4 at all.
    if mode not in gpu.MEMORY_CAPS[state.compute] and state.compute != "SPX":
        return SetStatus.UNAVAILABLE
    return SetStatus.OK


def with_memory(state: GpuState, mode: str) -> GpuState:
    """The state after the driver reloads in NPS ``mode`` (SPX becomes CPX under NPS4)."""
    compute = state.compute if mode in gpu.MEMORY_CAPS[state.compute] else "CPX"
    return dataclasses.replace(state, compute=compute, memory=mode, pending_memory=None)


def change_state(
    host_dir: Path,
    check: Callable[[GpuState], SetStatus],
    change: Callable[[GpuState], GpuState],
    wait: Callable[[GpuState], None],
) -> tuple[SetStatus, GpuState]:
    """Check, wait and apply one state change under the host's lock; re-render on success."""
    path = host_dir / gpu.STATE_FILE
    with gpu.state_lock(host_dir):
        state = GpuState.load(path)
        status = check(state)
        if status is SetStatus.OK:
            wait(state)
            state = change(state)
            state.save(path)
            gpu.render_host(host_dir, state)
        return status, state


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _progress(
    console: Console, prefix: str, total: int, seconds: float, *, filled: str = "█"
) -> None:
    """Show the tools' 40-wide ``[███....] j/total secs remain`` bar while ``seconds`` pass."""

    def show(j: int) -> None:
        x = int(40 * min(j, total) / total)
        console.print(f"{prefix}[{filled * x}{'.' * (40 - x)}] {j}/{total} secs remain", end="\r")

    show(0)
    whole = int(seconds)
    for j in range(whole):
        _sleep(1.0)
        show(j + 1)
    _sleep(seconds - whole)


def main(tool: str, argv: Sequence[str], host_dir: Path) -> int:
    """Run simulated ``tool`` (rocm-smi | amd-smi) with ``argv`` on the lab host in ``host_dir``.

    Prints to sys.stdout/sys.stderr like the real tool for the host's ROCm version and
    returns its exit code.
    """
    console = Console(out=sys.stdout, err=sys.stderr, inp=sys.stdin)
    try:
        return run(tool, argv, host_dir, console)
    except BrokenPipeError:
        # Like the real tools piped into `head`: stop quietly with 1, no traceback at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run(tool: str, argv: Sequence[str], host_dir: Path, console: Console) -> int:
    """:func:`main` with explicit streams."""
    try:
        if tool == "rocm-smi":
            return _rocm_smi(list(argv), host_dir, console)
        if tool == "amd-smi":
            return _amd_smi(list(argv), host_dir, console)
        console.error(f"fleetbench lab: no simulated tool {tool!r} — use one of {TOOLS}")
        return 2
    except CliExitError as exc:
        console.out.write(exc.stdout)
        console.err.write(exc.stderr)
        return exc.status
    except LabError as exc:
        console.error(f"fleetbench lab ({tool}): {exc}")
        return 1


def answer_queries(host_dir: Path, state: GpuState) -> dict[str, gpu.SmiAnswer] | None:
    """What the tools print for each of ``gpu.ANSWERED_QUERIES``, by ``gpu.answer_name``.

    The simulator runs in-process on the saved state; None when ``state`` is not the saved
    one (or none is saved): the wrappers then run the simulator rather than print answers
    that differ from it.
    """
    try:
        saved = GpuState.load(host_dir / gpu.STATE_FILE)
    except LabError:
        return None
    if saved != state:
        return None
    answers = {}
    for tool, argv in gpu.ANSWERED_QUERIES:
        out, err = io.StringIO(), io.StringIO()
        code = run(tool, argv, host_dir, Console(out=out, err=err, inp=io.StringIO()))
        answers[gpu.answer_name(tool, argv)] = gpu.SmiAnswer(out.getvalue(), err.getvalue(), code)
    return answers


def _not_simulated(console: Console, what: str, supported: str) -> int:
    console.error(f"fleetbench lab: {what} is not simulated — supported: {supported}")
    return 2


# --- rocm-smi (rocm_smi.py, FORMATS §2) --------------------------------------------------

ROCM_APP_WIDTH = 90
ROCM_HEADER = " ROCm System Management Interface "
ROCM_FOOTER = " End of ROCm SMI Log "
ROCM_COMPUTE_TYPES = ["SPX", "DPX", "TPX", "QPX", "CPX"]
ROCM_MEMORY_TYPES = ["NPS1", "NPS2", "NPS4", "NPS8"]
# rsmi_status_t values: RETCODE, which rocm-smi only returns with a non-default --loglevel.
RSMI_STATUS = {
    SetStatus.INVALID: 1,
    SetStatus.NO_PERM: 4,
    SetStatus.BUSY: 16,
    SetStatus.UNAVAILABLE: 18,
}
ROCM_NOT_SIMULATED = (
    ("-a", "--showallinfo"),
    ("-i", "--showid"),
    ("--showhw",),
    ("--showbus",),
    ("--showproductname",),
    ("--showuniqueid",),
    ("-u", "--showuse"),
    ("--showmemuse",),
    ("-t", "--showtemp"),
    ("-P", "--showpower"),
    ("--showtopo",),
    ("--resetcomputepartition",),
    ("--resetmemorypartition",),
)
ROCM_SUPPORTED = (
    "(no options), --showcomputepartition, --showmemorypartition, --showmeminfo vram, "
    "--setcomputepartition, --setmemorypartition [--autorespond y], -d, --json, --csv, --loglevel"
)
ROCM_NPS_WARNING = (
    "",
    "          ******WARNING******",
    "",
    "          Setting Dynamic Memory (NPS) partition modes require users to quit all GPU "
    "workloads.",
    "          ROCm SMI will then attempt to change memory (NPS) partition mode.",
    "          Upon a successful set, ROCm SMI will then initiate an action to restart AMD GPU "
    "driver.",
    "          This action will change all GPU's in the hive to the requested memory (NPS) "
    "partition mode.",
    "",
    "          Please use this utility with caution.",
    "          ",
    "",
)
ROCM_SCLK = (122, 131, 131, 149, 149, 163, 163, 170)
ROCM_VRAM_USED = (297771008, 297775104)


def _rocm_parser() -> CliParser:
    parser = CliParser(
        prog="rocm-smi",
        description="AMD ROCm System Management Interface (fleetbench lab simulation)",
    )
    parser.add_argument("-d", "--device", type=int, nargs="+", help="Execute command on device")
    parser.add_argument("--alldevices", action="store_true")
    parser.add_argument("--showcomputepartition", action="store_true")
    parser.add_argument("--showmemorypartition", action="store_true")
    parser.add_argument("--showmeminfo", metavar="TYPE", type=str, nargs="+")
    parser.add_argument(
        "--setcomputepartition",
        choices=ROCM_COMPUTE_TYPES + [x.lower() for x in ROCM_COMPUTE_TYPES],
        type=str,
        nargs=1,
    )
    parser.add_argument(
        "--setmemorypartition",
        choices=ROCM_MEMORY_TYPES + [x.lower() for x in ROCM_MEMORY_TYPES],
        type=str,
        nargs=1,
    )
    parser.add_argument("--autorespond", metavar="RESPONSE")
    parser.add_argument("--loglevel", metavar="LEVEL")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--csv", action="store_true")
    for flags in ROCM_NOT_SIMULATED:
        parser.add_argument(*flags, action="store_true", help=argparse.SUPPRESS)
    return parser


def _spacer(display: str | None = None, fill: str = "=", width: int = ROCM_APP_WIDTH) -> str:
    """rocm_smi.printLogSpacer."""
    if width % 2:
        width += 1
    if not display:
        return fill * width
    if len(display) % 2:
        display += fill
    side = fill * ((width - len(display)) // 2)
    return side + display + side


@dataclass(frozen=True)
class _RocmLog:
    """rocm_smi.py's printLog / formatJson: text lines, or values collected per card."""

    console: Console
    as_json: bool
    data: dict[str, dict[str, str]]

    def spacer(self, display: str | None = None, width: int = ROCM_APP_WIDTH) -> None:
        if not self.as_json:
            self.console.print(_spacer(display, width=width))

    def log(self, device: int, metric: str, value: object = None) -> None:
        if self.as_json:
            line = metric if value is None else f"{metric}: {value}"
            if ":" in line:  # formatJson drops lines without a key
                key, _, rest = line.partition(": ")
                self.data[f"card{device}"][key] = rest.strip()
            return
        if value is None:
            self.console.print(f"GPU[{device}]\t\t: {metric}")
        else:
            self.console.print(f"GPU[{device}]\t\t: {metric}: {value}")


def _rocm_na_secondary(state: GpuState, device: LogicalGpu) -> bool:
    # ROCm 6.4.1 (S2): non-primary partitions report N/A for DID, partitions, clocks, power.
    return state.rocm == "6.4.1" and not device.primary


def _rocm_concise(state: GpuState, devices: Sequence[LogicalGpu], seed: str, log: _RocmLog) -> None:
    """rocm_smi.showAllConcise: the default table, widths computed as the real tool does."""
    header = [
        "Device",
        "Node",
        "IDs",
        "",
        "Temp",
        "Power",
        "Partitions",
        "SCLK",
        "MCLK",
        "Fan",
        "Perf",
        "PwrCap",
        "VRAM%",
        "GPU%",
    ]
    subheader = [
        "",
        "",
        "(DID,",
        "GUID)",
        "(Junction)",
        "(Socket)",
        "(Mem, Compute, ID)",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    for idx, (head, sub) in enumerate(zip(header, subheader, strict=True)):
        if len(sub) > len(head):
            header[idx] = head.ljust(len(sub))
        else:
            subheader[idx] = sub.ljust(len(head))
    rows = []
    for device in devices:
        g = device.gpu.index
        if _rocm_na_secondary(state, device):
            rows.append(
                [
                    str(device.index),
                    str(device.node),
                    "N/A, ",
                    str(device.kfd_gpu_id),
                    "N/A",
                    "N/A",
                    f"N/A, N/A, {device.partition}",
                    "N/A",
                    "N/A",
                    "0%",
                    "n/a",
                    "N/A",
                    "0%",
                    "N/A",
                ]
            )
            continue
        temp = 40 + gpu.derive(seed, "temp", g) % 9
        power = 130 + gpu.derive(seed, "power", g) % 13
        rows.append(
            [
                str(device.index),
                str(device.node),
                "0x74a1, ",
                str(device.kfd_gpu_id),
                f"{float(temp):.1f}\N{DEGREE SIGN}C",
                f"{float(power):.1f}W",
                f"{state.memory}, {state.compute}, {device.partition}",
                f"{ROCM_SCLK[device.partition]}Mhz",
                "900Mhz",
                "0%",
                "auto",
                "750.0W",
                "0%",
                "0%",
            ]
        )
    widths = [len(h) + 2 for h in header]
    for row in rows:
        widths = [max(w, len(v) + 2) for w, v in zip(widths, row, strict=True)]

    def line(words: Sequence[str]) -> str:
        return "".join(w.ljust(widths[i]) for i, w in enumerate(words))

    header_line = line(header)
    console = log.console
    console.print(_spacer(ROCM_HEADER, width=len(header_line)))
    console.print(_spacer(" Concise Info ", width=len(header_line)))
    console.print(header_line)
    # printLog(..., useItalics=True): wrapped in ANSI italics even when stdout is a pipe.
    console.print(f"\033[3m{line(subheader)}\033[0m")
    console.print(_spacer(width=len(header_line)))
    for row in rows:
        console.print(line(row))
    console.print(_spacer(width=len(header_line)))
    console.print(_spacer(ROCM_FOOTER, width=len(header_line)))


def _rocm_confirm(args: argparse.Namespace, console: Console) -> bool | None:
    """The NPS warning's confirmation: True/False, None when stdin hit EOF."""
    if args.autorespond is not None:
        answer = str(args.autorespond)
    else:
        console.print("Do you accept these terms? [Y/N] ", end="")
        answer = console.inp.readline()
        if not answer:
            return None
    return answer.strip().lower() in ("y", "yes")


def _rocm_smi(argv: list[str], host_dir: Path, console: Console) -> int:
    args = _rocm_parser().parse_args(argv)
    for flags in ROCM_NOT_SIMULATED:
        if getattr(args, flags[-1].lstrip("-")):
            return _not_simulated(console, f"rocm-smi {flags[-1]}", ROCM_SUPPORTED)
    if args.showmeminfo and [t.lower() for t in args.showmeminfo] != ["vram"]:
        return _not_simulated(
            console, f"rocm-smi --showmeminfo {' '.join(args.showmeminfo)}", "--showmeminfo vram"
        )
    state = GpuState.load(host_dir / gpu.STATE_FILE)
    seed = gpu.host_seed(host_dir)
    devices = list(gpu.logical_gpus(state, seed))
    if args.device is not None:
        known = {d.index: d for d in devices}
        for wanted in args.device:
            if wanted not in known:
                console.error(f"WARNING: No such device card{wanted}")
                return 0
        devices = [known[i] for i in dict.fromkeys(args.device)]
    as_json = bool(args.json or args.csv)
    concise = (
        not argv
        or (len(argv) == 1 and (args.alldevices or as_json))
        or (len(argv) == 2 and args.alldevices and as_json)
    )
    if concise and as_json:
        console.print("NOT_SUPPORTED: Cannot print JSON/CSV output for concise output")
        return 1
    log = _RocmLog(console, as_json, {f"card{d.index}": {} for d in devices})
    if not as_json:
        console.print("\n")
    if concise:
        _rocm_concise(state, devices, seed, log)
        return 0
    log.spacer(ROCM_HEADER)
    _rocm_show(args, state, devices, log)
    retcode = _rocm_set(args, host_dir, devices, log)
    if retcode < 0:
        return 1  # the NPS confirmation was refused or stdin was closed
    # rocm_smi.py resets RETCODE to 0 unless --loglevel is given and is not 'warning'.
    if args.loglevel is None or args.loglevel.lower() == "warning":
        retcode = 0
    if as_json:
        data = {card: values for card, values in log.data.items() if values}
        if not data:
            console.error("WARNING: No JSON data to report")
            return retcode
        console.print(_rocm_csv(data) if args.csv else json.dumps(data))
        return retcode
    log.spacer(ROCM_FOOTER)
    return retcode


def _rocm_show(
    args: argparse.Namespace, state: GpuState, devices: Sequence[LogicalGpu], log: _RocmLog
) -> None:
    """The --show* sections, in rocm_smi.py's order."""
    if args.showmeminfo:
        log.spacer(" Memory Usage (Bytes) ")
        for device in devices:
            # The whole GPU for every partition: the known ROCm 6.3-6.4 bug (S1).
            log.log(device.index, "VRAM Total Memory (B)", gpu.GPU_VRAM_BYTES)
            log.log(device.index, "VRAM Total Used Memory (B)", ROCM_VRAM_USED[device.gpu.socket])
        log.spacer()
    sections = (
        (
            args.showcomputepartition,
            " Current Compute Partition ",
            "Compute Partition",
            state.compute,
        ),
        (args.showmemorypartition, " Current Memory Partition ", "Memory Partition", state.memory),
    )
    for wanted, title, metric, value in sections:
        if not wanted:
            continue
        log.spacer(title)
        for device in devices:
            if _rocm_na_secondary(state, device):
                log.log(device.index, "Not supported on the given system")
            else:
                log.log(device.index, metric, value)
        log.spacer()


def _rocm_set(
    args: argparse.Namespace, host_dir: Path, devices: Sequence[LogicalGpu], log: _RocmLog
) -> int:
    """The --set* operations; returns RETCODE, or -1 when the NPS warning was not accepted."""
    retcode = 0
    if args.setcomputepartition:
        retcode = _rocm_set_compute(host_dir, devices, args.setcomputepartition[0].upper(), log)
    if args.setmemorypartition:
        console = log.console
        mode = args.setmemorypartition[0].upper()
        log.spacer(f" Set memory partition to {mode} ")
        if not log.as_json:
            for text in ROCM_NPS_WARNING:
                console.print(text)
        confirmed = _rocm_confirm(args, console)
        if confirmed is None:
            console.error("EOFError: EOF when reading a line")
            return -1
        if not confirmed:
            console.error("Confirmation not given. Exiting without setting value")
            return -1
        retcode = _rocm_set_memory(host_dir, devices, mode, log) or retcode
    return retcode


def _rocm_csv(data: dict[str, dict[str, str]]) -> str:
    keys: list[str] = []
    for values in data.values():
        keys.extend(k for k in values if k not in keys)
    lines = [",".join(["device", *keys])]
    for card, values in data.items():
        lines.append(",".join([card, *(values.get(k, "N/A").replace(",", "") for k in keys)]))
    return "\n".join(lines) + "\n"


def _rocm_set_compute(
    host_dir: Path, devices: Sequence[LogicalGpu], mode: str, log: _RocmLog
) -> int:
    log.spacer(f" Set compute partition to {mode} ")
    status, _ = change_state(
        host_dir,
        lambda s: compute_status(s, mode),
        lambda s: dataclasses.replace(s, compute=mode),
        lambda s: _sleep(s.set_delay_s),
    )
    text = {
        SetStatus.OK: f"Successfully set compute partition to {mode}",
        SetStatus.NO_PERM: "Permission denied",
        SetStatus.BUSY: "Device is currently busy, try again later",
        SetStatus.UNAVAILABLE: f"Requested setting ({mode}) is unavailable for current device",
        SetStatus.INVALID: f"Requested setting ({mode}) is unavailable for current device",
    }[status]
    for device in devices:
        log.log(device.index, text)
    log.spacer()
    return RSMI_STATUS.get(status, 0)


def _rocm_set_memory(
    host_dir: Path, devices: Sequence[LogicalGpu], mode: str, log: _RocmLog
) -> int:
    console = log.console
    waited: list[float] = []

    def wait(state: GpuState) -> None:
        # rocm_smi_lib reloads amdgpu itself; the CLI shows its bar while the first device works.
        if not log.as_json:
            _progress(console, "Updating memory partition: ", 140, state.set_delay_s)
        else:
            _sleep(state.set_delay_s)
        waited.append(state.set_delay_s)

    status, _ = change_state(
        host_dir, lambda s: memory_status(s, mode), lambda s: with_memory(s, mode), wait
    )
    for position, device in enumerate(devices):
        if position == 0 and waited and waited[0] >= 0.1 and not log.as_json:
            console.print()  # addExtraLine: a slow first device ends the bar line
        if status is SetStatus.OK:
            log.log(device.index, f"Successfully set memory partition to {mode}")
        elif status is SetStatus.NO_PERM:
            log.log(device.index, "Permission denied")
        elif status is SetStatus.BUSY:
            log.log(device.index, "Device is currently busy, try again later")
        else:
            # Reconstructed (FORMATS §5.5): the rsmi message for an NPS mode the device lacks.
            log.log(device.index, f"Device does not support setting to {mode}")
            log.log(
                device.index, "Available memory partition modes", ", ".join(gpu.MEMORY_CAPS["CPX"])
            )
    log.spacer()
    return RSMI_STATUS.get(status, 0)


# --- amd-smi (amdsmi_commands.py, FORMATS §3) --------------------------------------------

AMD_COMMANDS_NOT_SIMULATED = (
    "default",
    "metric",
    "monitor",
    "process",
    "topology",
    "firmware",
    "bad-pages",
    "event",
    "xgmi",
    "ras",
    "node",
)
AMD_SUPPORTED = (
    "version, list [-e], static --partition/-p, partition --current, set -C/-M, "
    "reset -r (ROCm 7), with --json and -g"
)
AMD_NPS_WARNING = (
    "",
    "          ****** WARNING ******",
    "",
    "          Setting Dynamic Memory (NPS) partition modes require users to quit all GPU "
    "workloads.",
    "          AMD SMI will then attempt to change memory (NPS) partition mode.",
    "          Upon a successful set, AMD SMI will then initiate an action to restart AMD GPU "
    "driver.",
    "          This action will change all GPU's in the hive to the requested memory (NPS) "
    "partition mode.",
    "",
    "          Please use this utility with caution.",
    "",
)
AMD_ERROR_CODES = {
    SetStatus.NO_PERM: ("10", "AMDSMI_STATUS_NO_PERM", "Permission Denied"),
    SetStatus.BUSY: ("30", "AMDSMI_STATUS_BUSY", "Device busy"),
    SetStatus.UNAVAILABLE: ("55", "AMDSMI_STATUS_SETTING_UNAVAILABLE", "Setting is not available"),
    SetStatus.INVALID: ("2", "AMDSMI_STATUS_INVAL", "Invalid parameters"),
}


def _version_key(state: GpuState) -> tuple[int, int, int]:
    return state.release.key


def _amd_parser(state: GpuState) -> CliParser:
    key = _version_key(state)
    parser = CliParser(
        prog="amd-smi",
        description="AMD System Management Interface "
        f"| Version: {state.release.amdsmi_tool} | ROCm version: {state.rocm}",
    )
    commands = parser.add_subparsers(dest="command", metavar="{version,list,static,...}")

    def command(name: str, helptext: str | None = None) -> CliParser:
        return commands.add_parser(name, help=helptext)

    def add_gpu(sub: CliParser) -> None:
        sub.add_argument("-g", "--gpu", nargs="+", metavar="GPU", help="Select a GPU ID, or all")

    def add_json(sub: CliParser) -> None:
        sub.add_argument("--json", action="store_true", help="Displays output in JSON format")

    sub = command("version", "Display version information")
    add_json(sub)
    sub = command("list", "List GPU information")
    add_gpu(sub)
    if key >= (6, 4, 0):
        sub.add_argument("-e", action="store_true", help="Show extended device information")
    add_json(sub)
    sub = command("static", "Gets static information about the specified GPU")
    add_gpu(sub)
    sub.add_argument("-p", "--partition", action="store_true", help="All partition information")
    add_json(sub)
    sub = command("partition", "Displays partition information of the devices")
    add_gpu(sub)
    sub.add_argument("-c", "--current", action="store_true", help="Current partitions")
    sub.add_argument("-m", "--memory", action="store_true", help="Memory partition info")
    sub.add_argument("-a", "--accelerator", action="store_true", help="Accelerator profiles")
    add_json(sub)
    sub = command("set", "Set options for devices")
    add_gpu(sub)
    group = sub.add_mutually_exclusive_group(required=True)
    compute_choices = ["SPX", "DPX", "QPX", "CPX"]
    if key >= (6, 4, 0):
        compute_choices += ["0", "1", "2", "3"]  # profile index accepted from 6.4.0
    group.add_argument(
        "-C",
        "--compute-partition",
        type=str.upper,
        choices=compute_choices,
        metavar="TYPE/INDEX" if key >= (6, 4, 0) else "PARTITION",
    )
    group.add_argument(
        "-M",
        "--memory-partition",
        type=str.upper,
        choices=["NPS1", "NPS2", "NPS4", "NPS8"],
        metavar="PARTITION",
    )
    sub = command("reset", "Reset options for devices")
    add_gpu(sub)
    if key >= (7, 0, 0):
        sub.add_argument(
            "-r", "--reload-driver", action="store_true", help="Reload the AMD GPU driver"
        )
    for name in AMD_COMMANDS_NOT_SIMULATED:
        sub = command(name)
        sub.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _select(devices: Sequence[LogicalGpu], wanted: list[str] | None) -> list[LogicalGpu]:
    if not wanted or [w.lower() for w in wanted] == ["all"]:
        return list(devices)
    by_index = {d.index: d for d in devices}
    chosen = []
    for item in wanted:
        try:
            chosen.append(by_index[int(item)])
        except (ValueError, KeyError):
            ids = f"0-{len(devices) - 1}" if devices else "none"
            raise CliExitError(
                2,
                stderr=f"amd-smi: error: argument -g/--gpu: GPU ID {item} is not valid, "
                f"valid GPU IDs: {ids} or all\n",
            ) from None
    return chosen


def _json_out(console: Console, payload: object) -> None:
    console.print(json.dumps(payload, indent=4))


def _blocks(console: Console, blocks: Sequence[tuple[int, Sequence[str]]]) -> None:
    """amd-smi's human-readable per-GPU output: ``GPU: n`` then indented lines."""
    text = "\n".join(
        f"GPU: {index}\n" + "".join(f"    {line}\n" for line in lines) for index, lines in blocks
    )
    console.print(text, end="")


def _gpu_string(device: LogicalGpu) -> str:
    return f"GPU ID: {device.index} BDF:{device.gpu.bdf}"


def _amd_exception(console: Console, status: SetStatus, final: str, *, indent: str = "") -> None:
    code, name, description = AMD_ERROR_CODES[status]
    console.error(
        "amdsmi.amdsmi_exception.AmdSmiLibraryException: Error code:\n"
        f"{indent}{code} | {name} - {description}\n"
        "\n"
        "The above exception was the direct cause of the following exception:\n"
        "\n"
        f"{final}"
    )


def _amd_smi(argv: list[str], host_dir: Path, console: Console) -> int:
    if argv and argv[0] in AMD_COMMANDS_NOT_SIMULATED:
        return _not_simulated(console, f"amd-smi {argv[0]}", AMD_SUPPORTED)
    state = GpuState.load(host_dir / gpu.STATE_FILE)
    args = _amd_parser(state).parse_args(argv)
    if args.command is None or args.command in AMD_COMMANDS_NOT_SIMULATED:
        name = "amd-smi" if args.command is None else f"amd-smi {args.command}"
        return _not_simulated(console, name, AMD_SUPPORTED)
    devices = gpu.logical_gpus(state, gpu.host_seed(host_dir))
    if args.command == "version":
        return _amd_version(state, args, console)
    selected = _select(devices, args.gpu)
    if args.command == "list":
        return _amd_list(state, selected, args, console)
    if args.command == "static":
        if not args.partition:
            return _not_simulated(
                console, "amd-smi static without --partition", "amd-smi static --partition"
            )
        return _amd_static_partition(state, selected, args, console)
    if args.command == "partition":
        if args.memory or args.accelerator or not args.current:
            return _not_simulated(
                console, "amd-smi partition other than --current", "amd-smi partition --current"
            )
        return _amd_partition_current(state, selected, args, console)
    if args.command == "set":
        if args.compute_partition is not None:
            return _amd_set_compute(host_dir, state, selected, args.compute_partition, console)
        return _amd_set_memory(host_dir, state, selected, args.memory_partition, console)
    if getattr(args, "reload_driver", False):
        return _amd_reload_driver(host_dir, console)
    return _not_simulated(console, "amd-smi reset without -r", "amd-smi reset -r (ROCm 7)")


def _amd_version(state: GpuState, args: argparse.Namespace, console: Console) -> int:
    release = state.release
    if args.json:
        _json_out(
            console,
            {
                "tool": "AMDSMI Tool",
                "version": release.amdsmi_tool,
                "amdsmi_library_version": release.amdsmi_library,
                "rocm_version": release.version,
                "amdgpu_version": release.amdgpu,
                "amd_hsmp_driver_version": "N/A",
            },
        )
        return 0
    console.print(
        f"AMDSMI Tool: {release.amdsmi_tool} | AMDSMI Library version: {release.amdsmi_library}"
        f" | ROCm version: {release.version} | amdgpu version: {release.amdgpu}"
        " | amd_hsmp version: N/A"
    )
    return 0


def _amd_list(
    state: GpuState, selected: Sequence[LogicalGpu], args: argparse.Namespace, console: Console
) -> int:
    key = _version_key(state)
    extended = bool(getattr(args, "e", False))
    entries: list[tuple[int, dict[str, object]]] = []
    for device in selected:
        entry: dict[str, object] = {
            "bdf": device.bdf,
            "uuid": device.gpu.uuid,
            "kfd_id": device.kfd_gpu_id,
            "node_id": device.node,
            "partition_id": device.partition,
        }
        if extended:
            # 6.4.0 printed N/A (or renderD128) for partitions 1-7; fixed in 6.4.1 (S7).
            fixed = key >= (6, 4, 1) or device.primary
            entry["render"] = f"renderD{device.render_minor}" if fixed else "N/A"
            entry["card"] = f"card{device.card}" if fixed else "N/A"
            entry["hsa_id"] = device.node
            entry["hip_id"] = device.index
            entry["hip_uuid"] = device.hip_uuid
            if key >= (7, 0, 0):
                entry["oam_id"] = device.gpu.oam_id if device.primary else "N/A"
        entries.append((device.index, entry))
    if args.json:
        _json_out(console, [{"gpu": index, **entry} for index, entry in entries])
        return 0
    _blocks(
        console,
        [(index, [f"{k.upper()}: {v}" for k, v in entry.items()]) for index, entry in entries],
    )
    return 0


def _amd_static_partition(
    state: GpuState, selected: Sequence[LogicalGpu], args: argparse.Namespace, console: Console
) -> int:
    key = _version_key(state)
    # COMPUTE_PARTITION was renamed ACCELERATOR_PARTITION in 6.4.2 (S7).
    name = "accelerator_partition" if key >= (6, 4, 2) else "compute_partition"
    entries = [
        (
            d.index,
            {name: state.compute, "memory_partition": state.memory, "partition_id": d.partition},
        )
        for d in selected
    ]
    if args.json:
        items = [{"gpu": index, "partition": values} for index, values in entries]
        _json_out(console, {"gpu_data": items} if key >= (7, 0, 0) else items)
        return 0
    _blocks(
        console,
        [
            (index, ["PARTITION:", *(f"    {k.upper()}: {v}" for k, v in values.items())])
            for index, values in entries
        ],
    )
    return 0


def _amd_partition_current(
    state: GpuState, selected: Sequence[LogicalGpu], args: argparse.Namespace, console: Console
) -> int:
    key = _version_key(state)
    rows = []
    for device in selected:
        if key >= (6, 4, 0):
            partition_id = str(device.partition)
        elif device.primary:
            # 6.3: the primary lists its GPU's partitions, the others N/A (S7 "previous").
            partition_id = ",".join(str(p) for p in range(state.per_gpu))
        else:
            partition_id = "N/A"
        rows.append(
            {
                "gpu_id": device.index,
                "memory": state.memory,
                "accelerator_type": state.compute,
                "accelerator_profile_index": gpu.PROFILE_INDEX[state.compute],
                "partition_id": partition_id,
            }
        )
    if args.json:
        _json_out(console, {"current_partition": rows} if key >= (7, 0, 0) else rows)
        return 0
    widths = (8, 8, 18, 27, 14)
    lines = [] if key >= (6, 4, 0) else [""]
    lines.append("CURRENT_PARTITION:")
    lines.append(
        "".join(
            h.ljust(w)
            for h, w in zip(
                (
                    "GPU_ID",
                    "MEMORY",
                    "ACCELERATOR_TYPE",
                    "ACCELERATOR_PROFILE_INDEX",
                    "PARTITION_ID",
                ),
                widths,
                strict=True,
            )
        )
    )
    for row in rows:
        lines.append(
            "".join(str(v).ljust(w) for v, w in zip(row.values(), widths, strict=True)).rstrip()
        )
    console.print("\n".join(lines))
    return 0


def _amd_compute_request(value: str) -> tuple[str, int]:
    if value.isdigit():
        mode = next(m for m, i in gpu.PROFILE_INDEX.items() if i == int(value))
        return mode, int(value)
    return value, gpu.PROFILE_INDEX[value]


def _amd_set_compute(
    host_dir: Path, state: GpuState, selected: Sequence[LogicalGpu], value: str, console: Console
) -> int:
    key = _version_key(state)
    mode, profile = _amd_compute_request(value)
    status, _ = change_state(
        host_dir,
        lambda s: compute_status(s, mode),
        lambda s: dataclasses.replace(s, compute=mode),
        lambda s: _sleep(s.set_delay_s),
    )
    first = selected[0]
    noun = "accelerator partition" if key >= (6, 4, 0) else "compute partition"
    if status is SetStatus.NO_PERM:
        _amd_exception(console, status, "PermissionError: Command requires elevation")
        return 1
    if status is SetStatus.BUSY:
        _amd_exception(
            console, status, f"ValueError: Unable to set {noun} to {value} on {_gpu_string(first)}"
        )
        return 1
    if status is not SetStatus.OK:
        # Text as in the AMD docs capture (including its missing parenthesis).
        console.print(
            f"\nAttempted to set {noun} to {mode} (profile #{profile} on {_gpu_string(first)}\n"
            "\n[AMDSMI_STATUS_SETTING_UNAVAILABLE] Please check amd-smi partition --memory "
            "--accelerator for available profiles.\n"
            "Users may need to switch memory partition to another mode in order to enable the "
            "desired accelerator partition.\n"
        )
        _amd_exception(
            console,
            status,
            "ValueError: [AMDSMI_STATUS_SETTING_UNAVAILABLE] Unable "
            f"to set {noun} to {value} on {_gpu_string(first)}",
            indent="        ",
        )
        return 1
    if key >= (6, 4, 0):
        result = (
            f"ACCELERATOR_PARTITION: Successfully set accelerator partition to {mode} "
            f"(profile #{profile})"
        )
    else:
        result = f"COMPUTEPARTITION: Successfully set compute partition to {mode}"
    _blocks(console, [(d.index, [result]) for d in selected])
    return 0


def _amd_set_memory(
    host_dir: Path, state: GpuState, selected: Sequence[LogicalGpu], mode: str, console: Console
) -> int:
    key = _version_key(state)
    for text in AMD_NPS_WARNING:
        console.print(text)
    console.print("Do you accept these terms? [Y/N] ", end="")
    answer = console.inp.readline()
    if not answer:
        console.error("EOFError: EOF when reading a line")
        return 1
    if answer.strip().lower() not in ("y", "yes"):
        console.error("Confirmation not given, exiting without setting value")
        return 1
    console.print()
    label = "MEMORY_PARTITION" if key >= (6, 4, 0) else "MEMORYPARTITION"
    reloads = key < (7, 0, 0)

    def wait(current: GpuState) -> None:
        if reloads:
            # 40 s budget in 6.3.0-6.3.1, 140 s later (S6, S5); bar for gpu 0 only.
            total = 40 if key < (6, 3, 2) else 140
            _progress(console, "Updating memory partition for gpu 0: ", total, current.set_delay_s)
            console.print("\n")

    def change(current: GpuState) -> GpuState:
        if reloads:
            return with_memory(current, mode)
        # ROCm 7: the request waits for `amd-smi reset -r` (FORMATS §3).
        return dataclasses.replace(current, pending_memory=mode)

    status, _ = change_state(host_dir, lambda s: memory_status(s, mode), change, wait)
    if status is SetStatus.NO_PERM:
        _blocks(
            console,
            [(selected[0].index, [f"{label}: [AMDSMI_STATUS_NO_PERM] Command requires elevation"])],
        )
        _amd_exception(console, status, "PermissionError: Command requires elevation")
        return 1
    if status is SetStatus.OK:
        if reloads:
            result = f"{label}: Successfully set memory partition to {mode}"
        else:
            result = (
                f"{label}: Successfully set memory partition to {mode}, use "
                "`sudo modprobe -r amdgpu && sudo modprobe amdgpu` to reload driver"
            )
        _blocks(console, [(d.index, [result]) for d in selected])
        return 0
    # Per-GPU failures are reported, not raised: amd-smi still exits 0 (amdsmi_commands.py).
    name = AMD_ERROR_CODES[status][1]
    lines = [f"{label}: [{name}] Unable to set memory partition to {mode}"]
    if status is SetStatus.INVALID:
        console.print(f"Valid Memory partition Modes: {','.join(gpu.MEMORY_CAPS['CPX'])}\n")
    _blocks(console, [(d.index, lines) for d in selected])
    return 0


def _amd_reload_driver(host_dir: Path, console: Console) -> int:
    # Reconstructed: amd-smi 26.x `reset -r` (amdsmi_gpu_driver_reload); exact text unverified.
    def check(state: GpuState) -> SetStatus:
        if state.noperm:
            return SetStatus.NO_PERM
        return SetStatus.BUSY if state.busy else SetStatus.OK

    def change(state: GpuState) -> GpuState:
        if state.pending_memory is None:
            return state
        return with_memory(state, state.pending_memory)

    status, _ = change_state(host_dir, check, change, lambda s: _sleep(s.set_delay_s))
    if status is SetStatus.NO_PERM:
        _amd_exception(console, status, "PermissionError: Command requires elevation")
        return 1
    if status is SetStatus.BUSY:
        console.print(
            "RELOAD_DRIVER: [AMDSMI_STATUS_AMDGPU_RESTART_ERR] Could not successfully "
            "restart the AMD GPU driver; stop all GPU workloads and try again"
        )
        return 1
    console.print("RELOAD_DRIVER: Successfully reloaded the AMD GPU driver")
    return 0
