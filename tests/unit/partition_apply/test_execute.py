"""Carrying out a plan on a simulated MI300X host (the lab's amd-smi / rocm-smi)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from fleetbench.lab import gpu, smi
from fleetbench.partition.apply import (
    AMD_SMI,
    COMPUTE,
    MEMORY,
    RELOAD,
    ROCM_SMI,
    Command,
    CommandRun,
    Plan,
    SetOutcome,
    Step,
    StepRecord,
    execute_plan,
    order_steps,
)
from tests.unit.partition_apply.conftest import lab_state

Runner = Callable[[Command], CommandRun]


def plan_for(host_dir: Path, target: tuple[str, str], tools: tuple[str, ...] = (AMD_SMI, ROCM_SMI)
             ) -> Plan:
    state = lab_state(host_dir)
    return Plan(
        steps=order_steps(state.compute, state.memory, *target),
        tools=tuple((tool, str(host_dir / "bin" / tool)) for tool in tools),
        rocm_version=state.rocm,
    )


def summary(records: Sequence[StepRecord]) -> list[tuple[str, str, str]]:
    return [(r.kind, r.tool, r.outcome.value) for r in records]


def test_spx_nps1_to_cpx_nps4_on_rocm_6(make_host: Callable[..., Path],
                                        lab_runner: Callable[[Path], Runner]) -> None:
    host = make_host(compute="SPX", memory="NPS1", rocm="6.4")
    result = execute_plan(plan_for(host, ("CPX", "NPS4")), lab_runner(host))
    assert result.ok, result.message
    assert summary(result.records) == [(COMPUTE, AMD_SMI, "ok"), (MEMORY, AMD_SMI, "ok")]
    state = lab_state(host)
    assert (state.compute, state.memory, state.pending_memory) == ("CPX", "NPS4", None)


def test_rocm_7_reloads_the_driver_after_the_nps_change(
    make_host: Callable[..., Path], lab_runner: Callable[[Path], Runner]
) -> None:
    host = make_host(compute="SPX", memory="NPS1", rocm="7.0")
    result = execute_plan(plan_for(host, ("CPX", "NPS4")), lab_runner(host))
    assert result.ok, result.message
    assert summary(result.records) == [
        (COMPUTE, AMD_SMI, "ok"), (MEMORY, AMD_SMI, "ok"), (RELOAD, AMD_SMI, "ok")]
    state = lab_state(host)
    assert (state.compute, state.memory, state.pending_memory) == ("CPX", "NPS4", None)


def test_rocm_smi_alone_needs_no_reload(make_host: Callable[..., Path],
                                        lab_runner: Callable[[Path], Runner]) -> None:
    host = make_host(compute="SPX", memory="NPS1", rocm="7.0")
    result = execute_plan(plan_for(host, ("CPX", "NPS4"), tools=(ROCM_SMI,)), lab_runner(host))
    assert result.ok, result.message
    assert summary(result.records) == [(COMPUTE, ROCM_SMI, "ok"), (MEMORY, ROCM_SMI, "ok")]
    assert (lab_state(host).compute, lab_state(host).memory) == ("CPX", "NPS4")


def test_back_to_spx_sets_nps1_first(make_host: Callable[..., Path],
                                     lab_runner: Callable[[Path], Runner]) -> None:
    host = make_host(compute="CPX", memory="NPS4")
    result = execute_plan(plan_for(host, ("SPX", "NPS1")), lab_runner(host))
    assert result.ok, result.message
    assert [r.kind for r in result.records] == [MEMORY, COMPUTE]
    assert (lab_state(host).compute, lab_state(host).memory) == ("SPX", "NPS1")


def test_the_wrong_order_is_refused_by_the_driver(make_host: Callable[..., Path],
                                                  lab_runner: Callable[[Path], Runner]) -> None:
    """Why the order matters: SPX while in NPS4 is SETTING_UNAVAILABLE, nothing changes."""
    host = make_host(compute="CPX", memory="NPS4")
    tools = ((AMD_SMI, str(host / "bin" / AMD_SMI)),)
    wrong = Plan((Step(COMPUTE, "SPX"), Step(MEMORY, "NPS1")), tools, "6.4.1")
    result = execute_plan(wrong, lab_runner(host))
    assert result.failed_step == COMPUTE
    assert summary(result.records) == [(COMPUTE, AMD_SMI, "setting_unavailable")]
    assert (lab_state(host).compute, lab_state(host).memory) == ("CPX", "NPS4")


@pytest.mark.parametrize(("fault", "outcome"), [("busy", "busy"), ("noperm", "no_perm")])
@pytest.mark.parametrize("tools", [(AMD_SMI, ROCM_SMI), (ROCM_SMI,)])
def test_a_driver_refusal_stops_at_the_first_step(
    make_host: Callable[..., Path], lab_runner: Callable[[Path], Runner], fault: str,
    outcome: str, tools: tuple[str, ...]
) -> None:
    host = make_host(compute="SPX", memory="NPS1", **{fault: "true"})
    result = execute_plan(plan_for(host, ("CPX", "NPS4"), tools=tools), lab_runner(host))
    assert result.failed_step == COMPUTE
    # One command only: no fallback after a driver answer, no memory step after a failure.
    assert summary(result.records) == [(COMPUTE, tools[0], outcome)]
    assert (lab_state(host).compute, lab_state(host).memory) == ("SPX", "NPS1")


def test_amd_smi_rejecting_its_arguments_falls_back_to_rocm_smi(
    make_host: Callable[..., Path], lab_runner: Callable[[Path], Runner],
    smi_fixture: Callable[[str], str],
) -> None:
    """amd-smi 6.4.x on Python 3.13 rejects ``set -C DPX`` (S4); rocm-smi sets it."""
    host = make_host(compute="CPX", memory="NPS1")
    lab = lab_runner(host)
    rejected = smi_fixture("amd-smi_set_compute_partition_argparse_error_rocm643_py313.txt")

    def run(command: Command) -> CommandRun:
        if Path(command.argv[0]).name == AMD_SMI:
            return CommandRun(2, "", rejected)
        return lab(command)

    result = execute_plan(plan_for(host, ("DPX", "NPS1")), run)
    assert result.ok, result.message
    assert summary(result.records) == [(COMPUTE, AMD_SMI, "tool_error"),
                                       (COMPUTE, ROCM_SMI, "ok")]
    assert lab_state(host).compute == "DPX"


def test_no_tool_at_all_fails_the_first_step(make_host: Callable[..., Path],
                                             lab_runner: Callable[[Path], Runner]) -> None:
    host = make_host(compute="SPX", memory="NPS1")
    result = execute_plan(plan_for(host, ("CPX", "NPS4"), tools=()), lab_runner(host))
    assert result.failed_step == COMPUTE
    assert "neither amd-smi nor rocm-smi" in result.message
    assert lab_state(host).compute == "SPX"


def test_a_partial_nps_confirmation_goes_on_to_verification(
    smi_fixture: Callable[[str], str]
) -> None:
    """The docs' NPS4 run dies after GPU 14 with the mode applied: warn, let verify decide."""
    text = smi_fixture("amd-smi_set_memory_partition_nps4_docs.txt")
    plan = Plan((Step(MEMORY, "NPS4"),), ((AMD_SMI, "/opt/rocm/bin/amd-smi"),), "6.4.0")
    result = execute_plan(plan, lambda command: CommandRun(1, text, ""))
    assert result.ok
    assert [r.outcome for r in result.records] == [SetOutcome.UNCERTAIN]
    assert "Too many open files" in result.warnings[0]


def test_a_failed_reload_is_its_own_step(make_host: Callable[..., Path],
                                         lab_runner: Callable[[Path], Runner]) -> None:
    host = make_host(compute="CPX", memory="NPS1", rocm="7.0")
    lab = lab_runner(host)

    def run(command: Command) -> CommandRun:
        done = lab(command)
        if "-M" in command.argv or "--memory-partition" in command.argv:
            # A GPU client starts between the NPS request and the reload.
            state = lab_state(host).with_settings({"busy": "true"})
            state.save(host / gpu.STATE_FILE)
            smi.render_host(host, state)
        return done

    result = execute_plan(plan_for(host, ("CPX", "NPS4")), run)
    assert result.failed_step == RELOAD
    assert summary(result.records)[-1] == (RELOAD, AMD_SMI, "failed")
    assert "AMDGPU_RESTART_ERR" in result.message
    # The NPS request waits for a reload that never happened.
    assert (lab_state(host).memory, lab_state(host).pending_memory) == ("NPS1", "NPS4")
