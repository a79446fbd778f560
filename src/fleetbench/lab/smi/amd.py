"""Simulated ``amd-smi`` (amdsmi_commands.py, FORMATS §3) of a lab host.

It prints what the real tool prints for the host's state and ROCm version (the captures
in ``tests/fixtures/smi/``); texts not covered by a fixture are reconstructed from
amdsmi_commands.py and marked so. Its set operations change the state under the host's
lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState, LogicalGpu
from fleetbench.lab.smi.common import (
    CliExitError,
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


def amd_smi(argv: list[str], host_dir: Path, console: Console) -> int:
    if argv and argv[0] in AMD_COMMANDS_NOT_SIMULATED:
        return not_simulated(console, f"amd-smi {argv[0]}", AMD_SUPPORTED)
    state = GpuState.load(host_dir / gpu.STATE_FILE)
    args = _amd_parser(state).parse_args(argv)
    if args.command is None or args.command in AMD_COMMANDS_NOT_SIMULATED:
        name = "amd-smi" if args.command is None else f"amd-smi {args.command}"
        return not_simulated(console, name, AMD_SUPPORTED)
    devices = gpu.logical_gpus(state, gpu.host_seed(host_dir))
    if args.command == "version":
        return _amd_version(state, args, console)
    selected = _select(devices, args.gpu)
    if args.command == "list":
        return _amd_list(state, selected, args, console)
    if args.command == "static":
        if not args.partition:
            return not_simulated(
                console, "amd-smi static without --partition", "amd-smi static --partition"
            )
        return _amd_static_partition(state, selected, args, console)
    if args.command == "partition":
        if args.memory or args.accelerator or not args.current:
            return not_simulated(
                console, "amd-smi partition other than --current", "amd-smi partition --current"
            )
        return _amd_partition_current(state, selected, args, console)
    if args.command == "set":
        if args.compute_partition is not None:
            return _amd_set_compute(host_dir, state, selected, args.compute_partition, console)
        return _amd_set_memory(host_dir, state, selected, args.memory_partition, console)
    if getattr(args, "reload_driver", False):
        return _amd_reload_driver(host_dir, console)
    return not_simulated(console, "amd-smi reset without -r", "amd-smi reset -r (ROCm 7)")


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
        lambda s: sleep(s.set_delay_s),
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
            progress(console, "Updating memory partition for gpu 0: ", total, current.set_delay_s)
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

    status, _ = change_state(host_dir, check, change, lambda s: sleep(s.set_delay_s))
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
