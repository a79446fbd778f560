"""The order of partition changes: what the hardware accepts, table-driven."""

from __future__ import annotations

import itertools

import pytest

from fleetbench.errors import BadInput
from fleetbench.partition.apply import COMPUTE, MEMORY, Step, order_steps

C, M = COMPUTE, MEMORY

# The driver's profile table on a real MI300X (S4, smi/amd-smi_partition_accelerator_*): the
# NPS modes each compute mode holds. An independent oracle for the simulation below.
MI300X_HOLDS = {
    "SPX": {"NPS1"},
    "DPX": {"NPS1"},
    "QPX": {"NPS1", "NPS4"},
    "CPX": {"NPS1", "NPS4"},
}


@pytest.mark.parametrize(
    ("current", "target", "steps"),
    [
        (("SPX", "NPS1"), ("CPX", "NPS4"), [(C, "CPX"), (M, "NPS4")]),  # NPS4 needs CPX first
        (("CPX", "NPS4"), ("SPX", "NPS1"), [(M, "NPS1"), (C, "SPX")]),  # SPX needs NPS1 first
        (("CPX", "NPS4"), ("CPX", "NPS4"), []),
        (("CPX", "NPS1"), ("CPX", "NPS4"), [(M, "NPS4")]),
        (("CPX", "NPS4"), ("CPX", "NPS1"), [(M, "NPS1")]),
        (("SPX", "NPS1"), ("CPX", "NPS1"), [(C, "CPX")]),
        (("CPX", "NPS1"), ("SPX", "NPS1"), [(C, "SPX")]),
        (("CPX", "NPS4"), ("QPX", "NPS4"), [(C, "QPX")]),
        (("CPX", "NPS4"), ("DPX", "NPS1"), [(M, "NPS1"), (C, "DPX")]),
        (("DPX", "NPS1"), ("QPX", "NPS4"), [(C, "QPX"), (M, "NPS4")]),
        (("QPX", "NPS4"), ("CPX", "NPS1"), [(C, "CPX"), (M, "NPS1")]),  # both fit: compute first
        (("spx", "nps1"), ("cpx", "nps4"), [(C, "CPX"), (M, "NPS4")]),  # names as typed
    ],
)
def test_order_for_one_state(current: tuple[str, str], target: tuple[str, str],
                             steps: list[tuple[str, str]]) -> None:
    assert order_steps(*current, *target) == tuple(Step(k, m) for k, m in steps)


@pytest.mark.parametrize(
    ("computes", "memories", "target", "steps"),
    [
        # Some GPUs already switched: set them all anyway, in the order every one accepts.
        ({"SPX", "CPX"}, {"NPS1"}, ("CPX", "NPS4"), [(C, "CPX"), (M, "NPS4")]),
        ({"CPX"}, {"NPS1", "NPS4"}, ("SPX", "NPS1"), [(M, "NPS1"), (C, "SPX")]),
        ({"CPX"}, {"NPS1", "NPS4"}, ("CPX", "NPS4"), [(M, "NPS4")]),
        ({"SPX", "CPX"}, {"NPS1"}, ("SPX", "NPS1"), [(C, "SPX")]),
        # Neither order fits every GPU: through NPS1, which every compute mode holds.
        ({"SPX", "CPX"}, {"NPS4"}, ("DPX", "NPS2"), [(M, "NPS1"), (C, "DPX"), (M, "NPS2")]),
    ],
)
def test_order_when_gpus_disagree(computes: set[str], memories: set[str],
                                  target: tuple[str, str], steps: list[tuple[str, str]]) -> None:
    assert order_steps(computes, memories, *target) == tuple(Step(k, m) for k, m in steps)


VALID = [(c, m) for c, held in MI300X_HOLDS.items() for m in sorted(held)]


@pytest.mark.parametrize(("current", "target"), list(itertools.product(VALID, VALID)),
                         ids="/".join)
def test_every_mi300x_change_passes_only_through_states_the_driver_accepts(
    current: tuple[str, str], target: tuple[str, str]
) -> None:
    compute, memory = current
    steps = order_steps(compute, memory, *target)
    for step in steps:
        if step.kind == COMPUTE:
            compute = step.mode
        else:
            memory = step.mode
        assert memory in MI300X_HOLDS[compute], f"{current} -> {target}: {compute}/{memory}"
    assert (compute, memory) == target
    # Nothing is set twice and nothing that already matched is set at all.
    kinds = [s.kind for s in steps]
    assert len(kinds) == len(set(kinds))
    assert (COMPUTE in kinds) == (current[0] != target[0])
    assert (MEMORY in kinds) == (current[1] != target[1])


def test_unknown_current_mode_cannot_be_planned() -> None:
    with pytest.raises(ValueError, match="must be known"):
        order_steps(set(), {"NPS1"}, "CPX", "NPS4")


def test_a_name_that_is_no_mode_is_bad_input() -> None:
    with pytest.raises(BadInput, match="unknown compute partition"):
        order_steps("SPX", "NPS1", "XPX", "NPS4")
