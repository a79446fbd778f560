"""A slot's device nodes and HIP_VISIBLE_DEVICES per GPU isolation mode, against the real
KFD topology of an 8 x MI300X CPX host (63 partitions: its last GPU shows 7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.isolation import IsolationError, render_minors, slot_devices
from fleetbench.partition.kfd import topology_from_raw
from tests.unit.test_gpus import raw

KFD_NODES = raw()["kfd_nodes"]


def test_render_minors_follow_hip_order_on_the_real_host() -> None:
    minors = render_minors(topology_from_raw(KFD_NODES))
    # nodes 0 and 1 are the CPUs; GPU i is node i + 2, renderD128 + i
    assert len(minors) == 63
    assert minors[:3] == [128, 129, 130]
    assert minors[-1] == 190


def test_all_passes_the_devices_as_they_are_and_selects_with_host_numbers() -> None:
    chosen = slot_devices("all", "8,9,10,11,12,13,14,15", KFD_NODES)
    assert chosen.devices == ("/dev/kfd", "/dev/dri")
    assert chosen.hip_visible_devices == "8,9,10,11,12,13,14,15"


def test_render_nodes_pass_only_the_slots_nodes_and_renumber_from_zero() -> None:
    chosen = slot_devices("render-nodes", "8,9,10,11,12,13,14,15", KFD_NODES)
    assert chosen.devices == ("/dev/kfd:/dev/kfd", *(
        f"/dev/dri/renderD{minor}:/dev/dri/renderD{minor}" for minor in range(136, 144)))
    assert chosen.hip_visible_devices == "0,1,2,3,4,5,6,7"
    first = slot_devices("render-nodes", "0", KFD_NODES)
    assert first.devices == ("/dev/kfd:/dev/kfd", "/dev/dri/renderD128:/dev/dri/renderD128")
    assert first.hip_visible_devices == "0"
    assert first.to_dict() == {"devices": list(first.devices), "hip_visible_devices": "0"}


def test_the_order_asked_for_is_kept_in_container_numbers() -> None:
    # The HIP runtime numbers the container's GPUs in KFD node order: 17 is 0 there.
    chosen = slot_devices("render-nodes", "18,17", KFD_NODES)
    assert chosen.devices[1:] == ("/dev/dri/renderD145:/dev/dri/renderD145",
                                  "/dev/dri/renderD146:/dev/dri/renderD146")
    assert chosen.hip_visible_devices == "1,0"


def test_other_devices_stay_and_gpu_ones_are_replaced() -> None:
    chosen = slot_devices("render-nodes", "0-1", KFD_NODES,
                          ["/dev/kfd", "/dev/dri", "/dev/dri/renderD150",
                           "/dev/infiniband/uverbs0:/dev/infiniband/uverbs0"])
    assert chosen.devices == ("/dev/kfd:/dev/kfd", "/dev/dri/renderD128:/dev/dri/renderD128",
                              "/dev/dri/renderD129:/dev/dri/renderD129",
                              "/dev/infiniband/uverbs0:/dev/infiniband/uverbs0")
    assert chosen.hip_visible_devices == "0,1"


def test_the_hosts_nodes_may_live_under_another_root() -> None:
    chosen = slot_devices("render-nodes", "2", KFD_NODES, device_root="/lab/h1/root")
    assert chosen.devices == ("/lab/h1/root/dev/kfd:/dev/kfd",
                              "/lab/h1/root/dev/dri/renderD130:/dev/dri/renderD130")


def test_a_gpu_the_topology_lacks_or_an_unknown_mode_is_an_error() -> None:
    # the real host shows 63 partitions: a slot of 56-63 asks for one it does not have
    with pytest.raises(IsolationError, match=r"GPU 63 of HIP_VISIBLE_DEVICES 56-63 is not in "
                                             r"the host's KFD topology \(63 GPUs\)"):
        slot_devices("render-nodes", "56-63", KFD_NODES)
    with pytest.raises(IsolationError, match="names no GPU"):
        slot_devices("render-nodes", "", KFD_NODES)
    with pytest.raises(IsolationError, match="'cgroups' is not one of all, render-nodes"):
        slot_devices("cgroups", "0", KFD_NODES)


def test_a_node_without_its_render_minor_cannot_be_isolated() -> None:
    nodes = [dict(node) for node in KFD_NODES]
    for node in nodes:
        if node["id"] == 5:
            node["properties"] = re.sub(r"^drm_render_minor \d+\n", "", node["properties"],
                                        flags=re.MULTILINE)
    with pytest.raises(IsolationError, match=r"KFD node 5 \(GPU 3\) names no drm_render_minor"):
        slot_devices("render-nodes", "0", nodes)


def test_an_unknown_isolation_in_the_inventory_is_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n"
                         "      fleetbench_gpu_isolation: cgroups\n")
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "8", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    # Named once, by the setting the admin set, and the host once.
    assert "fleetbench_gpu_isolation on gpu-a:" in err
    assert "must be one of: all, render-nodes, got: cgroups" in err
    assert not runs.exists()
