"""A host whose SSH host key is wrong ends ``failed:hostkey`` with one line; the rest go on.

Its own 3-host lab. The lab's known_hosts gets another host's key on one host's line (as
after a reinstall), or loses a line; it is put back byte for byte afterwards, and nothing
of fleetbench ever writes to it. The host's sshd is restarted first, as a reinstalled host
reboots: an SSH master connection still open from an earlier command (ControlPersist)
would otherwise carry the next one past the key check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import LabFleet, _lab, lab_address

# One lab for the whole module: its tests stay on one pytest-xdist worker.
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("hostkeys")]

TOKEN = "hf_HOSTKEY_canary_0b1c2d3e4f"


@pytest.fixture(scope="module")
def key_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    yield from _lab(tmp_path_factory, "hostkeylab", 3, lab_address(4))


def address_of(lab: LabFleet, host: str) -> str:
    """``[address]:port`` as SSH and known_hosts name a host on a port other than 22."""
    hosts: list[dict[str, Any]] = lab.status()["hosts"]  # type: ignore[assignment]
    address, port = next(h["address"] for h in hosts if h["name"] == host).rsplit(":", 1)
    return f"[{address}]:{port}" if port != "22" else address


@contextmanager
def known_hosts_changed(lab: LabFleet, host: str, *, key_of: str | None) -> Iterator[bytes]:
    """``host``'s known_hosts line holds ``key_of``'s key (None: the line is gone)."""
    path = lab.root / "known_hosts"
    original = path.read_bytes()
    lines = original.decode().splitlines()
    target, source = address_of(lab, host), address_of(lab, key_of) if key_of else None
    key = next(line.split(" ", 1)[1] for line in lines if line.split(" ", 1)[0] == source) \
        if source else None
    changed = [line if line.split(" ", 1)[0] != target else f"{target} {key}"
               for line in lines if key or line.split(" ", 1)[0] != target]
    assert changed != lines
    lab.set(host, "sshd=stopped")  # ends every connection to it
    lab.set(host, "sshd=running")
    tampered = ("\n".join(changed) + "\n").encode()
    path.write_bytes(tampered)
    try:
        yield tampered
        assert path.read_bytes() == tampered, "known_hosts was changed behind the admin's back"
    finally:
        path.write_bytes(original)


def the_line(lab: LabFleet, host: str) -> str:
    address = address_of(lab, host)
    return (f"host key of {host} ({address}) changed — if the host was reinstalled: "
            f"ssh-keygen -f {lab.root / 'known_hosts'} -R '{address}', then add the new key "
            "from your provisioning source")


def test_check_and_partition_show_name_a_changed_and_an_unknown_key(key_lab: LabFleet) -> None:
    with known_hosts_changed(key_lab, "lab02", key_of="lab01"):
        done = run_cli("check", "-i", key_lab.inventory, "--json")
        table = run_cli("check", "-i", key_lab.inventory, env={"COLUMNS": "400"})
        shown = run_cli("partition", "show", "-i", key_lab.inventory, "--json")
    assert done.returncode == 1, done.stderr
    hosts = json.loads(done.stdout)["hosts"]
    assert hosts["lab02"] == {"status": "failed:hostkey", "compute_partition": None,
                              "memory_partition": None, "logical_gpus": None,
                              "problems": [the_line(key_lab, "lab02")]}
    assert hosts["lab01"]["status"] == hosts["lab03"]["status"] == "ok"
    assert hosts["lab03"]["logical_gpus"] == 64
    # The table: the status and the fix, not SSH's banner folded into the cell.
    assert table.returncode == 1
    (row,) = [line for line in table.stdout.splitlines() if "lab02" in line]
    assert "failed:hostkey" in row and the_line(key_lab, "lab02") in row
    assert "@@@" not in table.stdout and "NASTY" not in table.stdout
    assert shown.returncode == 1, shown.stderr
    partitions = json.loads(shown.stdout)
    assert partitions["hosts"]["lab02"]["status"] == "failed:hostkey"
    assert partitions["hosts"]["lab02"]["problems"] == [the_line(key_lab, "lab02")]
    assert partitions["hosts"]["lab01"]["status"] == "ok"
    assert partitions["drift"]["unreachable"] == 1

    with known_hosts_changed(key_lab, "lab03", key_of=None):
        done = run_cli("check", "-i", key_lab.inventory, "--json")
    assert done.returncode == 1, done.stderr
    hosts = json.loads(done.stdout)["hosts"]
    assert hosts["lab03"]["status"] == "failed:hostkey"
    assert hosts["lab03"]["problems"] == [
        f"host key of lab03 ({address_of(key_lab, 'lab03')}) is not in known_hosts — add the "
        "host's key from your provisioning source (host key checking stays on)"]
    assert hosts["lab01"]["status"] == hosts["lab02"]["status"] == "ok"

    # Put back, every host checks again: nothing was accepted or left behind.
    done = run_cli("check", "-i", key_lab.inventory, "--json")
    assert done.returncode == 0, done.stdout
    assert {h["status"] for h in json.loads(done.stdout)["hosts"].values()} == {"ok"}


def test_run_ends_the_host_failed_hostkey_and_benchmarks_the_others(
        key_lab: LabFleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {"HF_TOKEN": TOKEN, "FLEETBENCH_HISTORY": str(tmp_path / "history.sqlite")}
    with known_hosts_changed(key_lab, "lab01", key_of="lab03"):
        done = run_cli("run", "-i", key_lab.inventory, "--model",
                       "meta-llama/Llama-3.1-8B-Instruct", "--gpus", "8", "--scenario",
                       "latency", "--slots", "1", "--runs-dir", runs, "--json", env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    line = the_line(key_lab, "lab01")
    assert summary["hosts"]["lab01"] == {"status": "failed:hostkey", "reason": line,
                                         "slots": {}}
    assert summary["hosts"]["lab02"]["status"] == summary["hosts"]["lab03"]["status"] == "ok"
    manifest = json.loads((Path(summary["run_dir"]) / "manifest.json").read_text())
    assert manifest["hosts"]["lab01"]["status"] == "failed:hostkey"
    assert manifest["hosts"]["lab01"]["reason"] == line
    assert manifest["hosts"]["lab01"]["cleanup"].startswith(f"failed:hostkey: {line} — ")
    for host in ("lab02", "lab03"):
        assert manifest["hosts"][host]["slots"]["slot0"]["status"] == "ok"
        reports = list((Path(summary["run_dir"]) / "hosts" / host).glob(
            "slot0/MAD/scripts/vllm/reports_*/summary/*_latency_report.csv"))
        assert len(reports) == 1
    # The progress lines and the report say it in one line, never with SSH's banner.
    assert "@@@" not in done.stderr and "NASTY" not in done.stderr
    gate = json.loads((Path(summary["run_dir"]) / "report" / "summary.json").read_text())["gate"]
    assert gate["hosts_not_ok"] == [{"host": "lab01", "status": "failed:hostkey",
                                     "reason": line}]
    assert TOKEN not in done.stdout + done.stderr
