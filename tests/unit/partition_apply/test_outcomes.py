"""Reading what a set command did from the real tool texts (exit codes are not trusted)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleetbench.partition.apply import (
    AMD_SMI,
    COMPUTE,
    MEMORY,
    RELOAD,
    ROCM_SMI,
    SetOutcome,
    needs_reload,
    parse_set_output,
)


@pytest.mark.parametrize(
    ("fixture", "kind", "mode", "rc", "outcome", "gpus"),
    [
        # amd-smi (AMD docs, verbatim)
        ("amd-smi_set_compute_partition_cpx_docs.txt", COMPUTE, "CPX", 0, SetOutcome.OK, 8),
        ("amd-smi_set_compute_partition_spx_docs.txt", COMPUTE, "SPX", 0, SetOutcome.OK, 8),
        ("amd-smi_set_memory_partition_nps1_docs.txt", MEMORY, "NPS1", 0, SetOutcome.OK, 8),
        # ROCm 6.3 key MEMORYPARTITION and a 40 s bar
        ("amd-smi_set_memory_partition_nps1_rocm63_changelog.txt", MEMORY, "NPS1", 0,
         SetOutcome.OK, 3),
        # GPUs 0-14 confirmed, then "Too many open files": the docs say the mode is applied
        ("amd-smi_set_memory_partition_nps4_docs.txt", MEMORY, "NPS4", 1,
         SetOutcome.UNCERTAIN, 15),
        # rocm-smi (rocm_smi.py's own print code)
        ("rocm-smi_setcomputepartition_cpx.txt", COMPUTE, "CPX", 0, SetOutcome.OK, 8),
        ("rocm-smi_setmemorypartition_nps4.txt", MEMORY, "NPS4", 0, SetOutcome.OK, 8),
    ],
)
def test_success(smi_fixture: Callable[[str], str], fixture: str, kind: str, mode: str,
                 rc: int, outcome: SetOutcome, gpus: int) -> None:
    result = parse_set_output(kind, mode, rc, smi_fixture(fixture), "")
    assert result.outcome is outcome, result.message
    assert result.confirmed_gpus == gpus
    assert result.proceed


@pytest.mark.parametrize(
    ("fixture", "stream", "kind", "mode", "rc", "outcome", "says"),
    [
        # amd-smi raises: the text is on stderr, exit 1
        ("amd-smi_set_compute_partition_error_busy_docs.txt", "err", COMPUTE, "SPX", 1,
         SetOutcome.BUSY, "AMDSMI_STATUS_BUSY"),
        ("amd-smi_set_compute_partition_error_noperm_docs.txt", "err", COMPUTE, "CPX", 1,
         SetOutcome.NO_PERM, "AMDSMI_STATUS_NO_PERM"),
        ("amd-smi_set_compute_partition_spx_while_nps4_error_docs.txt", "err", COMPUTE, "SPX",
         1, SetOutcome.UNAVAILABLE, "SETTING_UNAVAILABLE"),
        # rocm-smi prints per-GPU failures and exits 0 (no --loglevel)
        ("rocm-smi_setcomputepartition_cpx_busy.txt", "out", COMPUTE, "CPX", 0,
         SetOutcome.BUSY, "Device is currently busy"),
        ("rocm-smi_setcomputepartition_spx_while_nps4.txt", "out", COMPUTE, "SPX", 0,
         SetOutcome.UNAVAILABLE, "Requested setting (SPX) is unavailable"),
        # amd-smi 6.4.x on Python 3.13 rejects DPX in argparse: another tool may do it
        ("amd-smi_set_compute_partition_argparse_error_rocm643_py313.txt", "err", COMPUTE,
         "DPX", 2, SetOutcome.TOOL_ERROR, "invalid choice"),
    ],
)
def test_failure(smi_fixture: Callable[[str], str], fixture: str, stream: str, kind: str,
                 mode: str, rc: int, outcome: SetOutcome, says: str) -> None:
    text = smi_fixture(fixture)
    out, err = (text, "") if stream == "out" else ("", text)
    result = parse_set_output(kind, mode, rc, out, err)
    assert result.outcome is outcome, result.message
    assert says in result.message
    assert not result.proceed


def test_success_lines_for_another_mode_are_a_failure(smi_fixture: Callable[[str], str]) -> None:
    text = smi_fixture("amd-smi_set_compute_partition_spx_docs.txt")
    result = parse_set_output(COMPUTE, "CPX", 0, text, "")
    assert result.outcome is SetOutcome.FAILED
    assert "SPX instead of CPX" in result.message


def test_amd_smi_memory_errors_with_exit_0_are_not_success() -> None:
    # amd-smi set -M reports per-GPU failures and still exits 0 (amdsmi_commands.py).
    out = ("GPU: 0\n    MEMORY_PARTITION: [AMDSMI_STATUS_BUSY] Unable to set memory partition "
           "to NPS4\n")
    assert parse_set_output(MEMORY, "NPS4", 0, out, "").outcome is SetOutcome.BUSY


@pytest.mark.parametrize(
    ("rc", "out", "err", "timed_out", "outcome"),
    [
        (127, "", "amd-smi: command not found", False, SetOutcome.TOOL_ERROR),
        (124, "Updating memory partition: [....] 3/140 secs remain", "", True, SetOutcome.FAILED),
        (0, "", "", False, SetOutcome.FAILED),  # silence confirms nothing
        (1, "Traceback (most recent call last):\nKeyError: 'gpu'", "", False, SetOutcome.FAILED),
    ],
)
def test_no_confirmation_is_not_success(rc: int, out: str, err: str, timed_out: bool,
                                        outcome: SetOutcome) -> None:
    result = parse_set_output(COMPUTE, "CPX", rc, out, err, timed_out=timed_out)
    assert result.outcome is outcome, result.message


@pytest.mark.parametrize(
    ("rc", "out", "outcome"),
    [
        (0, "RELOAD_DRIVER: Successfully reloaded the AMD GPU driver\n", SetOutcome.OK),
        (1, "RELOAD_DRIVER: [AMDSMI_STATUS_AMDGPU_RESTART_ERR] Could not successfully restart "
            "the AMD GPU driver; stop all GPU workloads and try again\n", SetOutcome.FAILED),
        (0, "", SetOutcome.FAILED),
    ],
)
def test_reload_outcome(rc: int, out: str, outcome: SetOutcome) -> None:
    assert parse_set_output(RELOAD, "", rc, out, "").outcome is outcome


@pytest.mark.parametrize(
    ("tool", "version", "output", "reload"),
    [
        (AMD_SMI, "7.0.2-56", "", True),  # ROCm 7: set -M no longer reloads the driver
        (AMD_SMI, "6.4.1-83", "", False),  # 6.3-6.4: amd-smi reloads it itself
        (ROCM_SMI, "7.0.2-56", "", False),  # rocm_smi_lib always reloads it itself
        (AMD_SMI, None, "Successfully set memory partition to NPS4, use `sudo modprobe -r "
         "amdgpu && sudo modprobe amdgpu` to reload driver", True),
        (AMD_SMI, None, "MEMORY_PARTITION: Successfully set memory partition to NPS4", False),
    ],
)
def test_when_the_driver_must_be_reloaded(tool: str, version: str | None, output: str,
                                          reload: bool) -> None:
    assert needs_reload(tool, version, output) is reload
