"""Fleet-level pieces of show and apply that need no host: drift, batch sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbench.check import CheckReport, HostCheck
from fleetbench.errors import BadInput
from fleetbench.partition.rollout import batch_size, parse_serial
from fleetbench.partition.show import show_report
from fleetbench.preflight import judge_probe


def checked(name: str, probe: dict[str, Any], **expected: str) -> HostCheck:
    """A host as `check` sees it: the real preflight verdict on a probe of a lab host."""
    verdict = judge_probe(
        {**probe, "docker": {"rc": 0, "server_version": "26.1.5"},
         "disk": {"free_bytes": 10**12, "measured_at": "/"}},
        {"expected_compute": expected.get("compute", "CPX"),
         "expected_memory": expected.get("memory", "NPS4")},
    )
    return HostCheck(name, "ok" if verdict["ok"] else "failed", verdict=verdict)


def test_show_reports_each_host_against_its_own_expected_mode_and_the_drift(
    make_host: Callable[..., Path], probe_of: Callable[..., dict[str, Any]]
) -> None:
    cpx = probe_of(make_host())
    spx = probe_of(make_host(compute="SPX", memory="NPS1", rocm="7.0"))
    spx["driver_version"] = "6.14.14"
    report = show_report(CheckReport(hosts=(
        checked("a", cpx),
        checked("b", spx),
        checked("c", spx, compute="SPX", memory="NPS1"),  # another group expects SPX/NPS1
        HostCheck("d", "unreachable", problems=("ssh: connect to host d port 22: refused",)),
    )))
    status = {h.name: h.status for h in report.hosts}
    assert status == {"a": "ok", "b": "failed", "c": "ok", "d": "unreachable"}
    assert not report.ok
    a, b, _, d = report.hosts
    assert (a.logical_gpus, a.physical_gpus, a.partition_memory_bytes) == (64, 8, 25767706624)
    assert set(a.sources) == {"sysfs", "kfd"}
    assert a.sources["kfd"]["logical_gpus"] == 64
    assert any("expected CPX" in p for p in b.problems)
    assert d.problems == ("ssh: connect to host d port 22: refused",)
    drift = report.drift
    assert dict(drift.compute_partition) == {"SPX": 2, "CPX": 1}
    assert dict(drift.rocm_version) == {"7.0.2-56": 2, "6.4.1-83": 1}
    assert dict(drift.driver_version) == {"6.14.14": 2, "unknown": 1}
    assert drift.unreachable == 1
    assert set(drift.drifted) == {"rocm_version", "driver_version", "compute_partition",
                                  "memory_partition"}
    assert report.to_dict()["hosts"]["d"]["status"] == "unreachable"


def test_a_uniform_fleet_shows_no_drift(make_host: Callable[..., Path],
                                        probe_of: Callable[..., dict[str, Any]]) -> None:
    probe = probe_of(make_host())
    report = show_report(CheckReport(hosts=(checked("a", probe), checked("b", probe))))
    assert report.ok
    assert report.drift.drifted == ()


@pytest.mark.parametrize(("text", "serial", "hosts", "batch"), [
    ("1", 1, 10, 1), ("4", 4, 3, 3), ("25%", "25%", 10, 2), ("100%", "100%", 7, 7),
    ("10%", "10%", 3, 1),  # a percentage never makes an empty batch
])
def test_serial(text: str, serial: int | str, hosts: int, batch: int) -> None:
    assert parse_serial(text) == serial
    assert batch_size(parse_serial(text), hosts) == batch


@pytest.mark.parametrize("text", ["0", "-1", "two", "0%", "150%", "", "1.5"])
def test_bad_serial_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="--serial"):
        parse_serial(text)
