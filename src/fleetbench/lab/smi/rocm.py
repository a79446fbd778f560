"""Simulated ``rocm-smi`` (rocm_smi.py, FORMATS §2) of a lab host.

It prints what the real tool prints for the host's state and ROCm version (the captures
in ``tests/fixtures/smi/``); texts not covered by a fixture are reconstructed from
rocm_smi.py and marked so. Its set operations change the state under the host's lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState, LogicalGpu
from fleetbench.lab.smi.common import (
    CliParser,
    Console,
    SetStatus,
    change_state,
    compute_status,
    memory_status,
    not_simulated,
    progress,
    sleep,
    with_memory,
)

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


def rocm_smi(argv: list[str], host_dir: Path, console: Console) -> int:
    args = _rocm_parser().parse_args(argv)
    for flags in ROCM_NOT_SIMULATED:
        if getattr(args, flags[-1].lstrip("-")):
            return not_simulated(console, f"rocm-smi {flags[-1]}", ROCM_SUPPORTED)
    if args.showmeminfo and [t.lower() for t in args.showmeminfo] != ["vram"]:
        return not_simulated(
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
        lambda s: sleep(s.set_delay_s),
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
            progress(console, "Updating memory partition: ", 140, state.set_delay_s)
        else:
            sleep(state.set_delay_s)
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
