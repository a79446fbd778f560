"""GpuState: defaults, `fleetbench lab set` validation, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbench.errors import LabError
from fleetbench.lab import gpu
from fleetbench.lab.gpu import GpuState


def test_defaults_are_an_8_gpu_cpx_nps4_host_on_rocm_641() -> None:
    state = GpuState()
    assert (state.compute, state.memory, state.gpus, state.partitions) == ("CPX", "NPS4", 8, None)
    assert (state.rocm, state.busy, state.noperm) == ("6.4.1", False, False)
    assert 0 < state.set_delay_s < 1
    assert state.visible_partitions == 64
    assert state.partition_bytes == 25767706624  # KFD mem_banks/0 in CPX (S1)


def test_with_settings_applies_every_key() -> None:
    state = GpuState().with_settings(
        {
            "compute": "dpx",
            "memory": "NPS1",
            "gpus": "4",
            "partitions": "7",
            "rocm": "7.0",
            "busy": "true",
            "noperm": "yes",
            "set_delay": "1.5",
        }
    )
    assert state == GpuState(
        compute="DPX",
        memory="NPS1",
        gpus=4,
        partitions=7,
        rocm="7.0.2",
        busy=True,
        noperm=True,
        set_delay_s=1.5,
    )
    assert state.visible_partitions == 7
    assert GpuState(partitions=63).with_settings({"partitions": "all"}).partitions is None


def test_settings_are_checked_together_so_one_call_can_leave_nps4() -> None:
    state = GpuState().with_settings({"compute": "SPX", "memory": "NPS1"})
    assert (state.compute, state.memory) == ("SPX", "NPS1")
    assert (
        GpuState(compute="SPX", memory="NPS1")
        .with_settings({"memory": "NPS4", "compute": "QPX"})
        .memory
        == "NPS4"
    )


@pytest.mark.parametrize(
    ("short", "full"), [("6.3", "6.3.1"), ("6.4", "6.4.1"), ("6.4.2", "6.4.2"), ("7.0", "7.0.2")]
)
def test_rocm_short_forms(short: str, full: str) -> None:
    assert GpuState().with_settings({"rocm": short}).rocm == full


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"compute": "TPX"}, "SPX, DPX, QPX, CPX"),
        ({"memory": "NPS2"}, "NPS1, NPS4"),
        ({"gpus": "9"}, "1 to 8"),
        ({"gpus": "two"}, "1 to 8"),
        ({"partitions": "65"}, "1 to 64"),
        ({"rocm": "5.7"}, "6.4.1"),
        ({"busy": "maybe"}, "busy=true or busy=false"),
        ({"set_delay": "-1"}, "0 to 600"),
        ({"colour": "blue"}, "compute, memory"),
        ({"compute": "SPX"}, "memory=NPS1"),  # SPX with the default NPS4
        ({"compute": "DPX"}, "memory=NPS1"),
    ],
)
def test_invalid_settings_name_the_allowed_values(settings: dict[str, str], named: str) -> None:
    with pytest.raises(LabError, match=named) as caught:
        GpuState().with_settings(settings)
    assert " — " in str(caught.value)  # "<problem> — <fix>"


def test_memory_setting_clears_a_pending_rocm7_request() -> None:
    state = GpuState(rocm="7.0.2", pending_memory="NPS1")
    assert state.with_settings({"memory": "NPS4"}).pending_memory is None


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "host" / gpu.STATE_FILE
    state = GpuState(compute="QPX", memory="NPS4", partitions=31, busy=True)
    state.save(path)
    assert GpuState.load(path) == state
    assert json.loads(path.read_text())["compute"] == "QPX"
    assert [p.name for p in path.parent.iterdir()] == [gpu.STATE_FILE]  # no temp file left


def test_load_reports_missing_and_broken_state(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="lab up"):
        GpuState.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"compute": "CPX", "colour": 1}')
    with pytest.raises(LabError, match="unknown keys"):
        GpuState.load(broken)
    broken.write_text('{"compute": "SPX", "memory": "NPS4"}')
    with pytest.raises(LabError, match="refused by the driver"):
        GpuState.load(broken)


def test_fleet_facing_constants() -> None:
    assert gpu.GPU_SETTING_KEYS == (
        "compute",
        "memory",
        "gpus",
        "partitions",
        "rocm",
        "busy",
        "noperm",
        "set_delay",
    )
