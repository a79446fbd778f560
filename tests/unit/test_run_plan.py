"""Run planning: validation, slots, waves, host outcomes, the secret type."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.plan import assign_slots, parse_duration, plan_waves, slot_waves
from fleetbench.run import cleaned_by_collect, cleanup_status, drifted, host_outcome
from fleetbench.runner import TaskResult
from fleetbench.secrets import Secret, load_hf_token


def test_auto_slots_cover_every_cpx_partition() -> None:
    slots = assign_slots(64, 8)
    assert [s.hip_visible_devices for s in slots][:2] == ["0,1,2,3,4,5,6,7",
                                                          "8,9,10,11,12,13,14,15"]
    assert len(slots) == 8 and slots[-1].devices == tuple(range(56, 64))
    assert len(assign_slots(64, 1)) == 64
    assert len(assign_slots(64, 8, 1)) == 1


@pytest.mark.parametrize(("logical", "gpus", "slots", "words"), [
    (64, 128, "auto", "more than the 64"),
    (64, 3, "auto", "does not divide"),
    (64, 8, 9, "lower --slots to 8"),
    (64, 0, "auto", "at least 1"),
])
def test_bad_slot_requests(logical: int, gpus: int, slots: str | int, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        assign_slots(logical, gpus, slots)


def test_serving_slots_never_run_together() -> None:
    slots = assign_slots(64, 8, 3)
    assert [len(w) for w in slot_waves(slots, "serving")] == [1, 1, 1]
    assert [len(w) for w in slot_waves(slots, "all")] == [1, 1, 1]
    assert [len(w) for w in slot_waves(slots, "latency")] == [3]


def test_all_runs_at_once_where_the_mad_script_has_no_serving() -> None:
    slots = assign_slots(64, 8, 3)
    assert [len(w) for w in slot_waves(slots, "all", serving=False)] == [3]
    assert [len(w) for w in slot_waves(slots, "serving", serving=False)] == [1, 1, 1]
    plan = plan_waves([s.to_dict() for s in slots], "all", 64, "fleetbench-r-h", False)
    assert [[s["container"] for s in w] for w in plan["waves"]] == [
        ["fleetbench-r-h-slot0", "fleetbench-r-h-slot1", "fleetbench-r-h-slot2"]]


def test_waves_skip_slots_beyond_the_hosts_gpus() -> None:
    slots = [s.to_dict() for s in assign_slots(64, 8)]
    plan = plan_waves(slots, "throughput", 63, "fleetbench-r-h")
    assert [s["name"] for s in plan["skipped"]] == ["slot7"]
    assert plan["skipped"][0]["status"] == "skipped:gpus"
    assert len(plan["waves"]) == 1 and len(plan["waves"][0]) == 7
    assert plan["waves"][0][0]["container"] == "fleetbench-r-h-slot0"


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("45m", 2700),
                                               ("6h", 21600), ("1d", 86400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(BadInput, match="not a duration"):
        parse_duration("soon")


def _r(role: str, action: str, outcome: str, res: dict[str, object]) -> TaskResult:
    return TaskResult(host="h", task="t", role=role, action=action, outcome=outcome,
                      ignored=False, result=res, start="s", end="e")


def _fact(step: str, data: dict[str, object]) -> TaskResult:
    """The task a role ends with: its result fact."""
    return _r(step, "ansible.builtin.set_fact", "ok", {"ansible_facts": {
        f"{step}_result": {"step": step, "status": "ok", "data": data}}})


def test_host_outcomes() -> None:
    failed_preflight = (_r("preflight", "fleetbench_probe", "failed",
                           {"msg": "compute partition is SPX", "verdict": {"ok": False}}),)
    assert host_outcome("h", failed_preflight, False).status == "skipped:preflight"
    # The probe takes the run lock first; a host held by another run is not probed.
    locked = (_r("preflight", "fleetbench_probe", "failed",
                 {"msg": "host is in use by fleetbench run x", "locked": True}),)
    assert host_outcome("h", locked, False).status == "skipped:locked"
    pulled = _fact("image", {"repo_digests": ["reg/rocm/vllm@sha256:abc"], "id": "sha256:f"})
    checked_out = _fact("mad", {"commit": "2a2180ee87f3", "era": "report-script"})
    started = _fact("benchmark", {"started": ["slot0", "slot1"], "skipped": [
        {"name": "slot2", "status": "skipped:gpus", "summary": "slot2 needs GPU 23"}]})
    # How the slots ended on the host comes back with their files.
    collected = _fact("collect", {"cleaned": {"error": None}, "slots": [
        {"name": "slot0", "status": "exited", "exit_code": 0, "oom_killed": False},
        {"name": "slot1", "status": "exited", "exit_code": 1, "oom_killed": True,
         "started": "2026-12-03T17:00:22Z", "finished": "2026-12-03T17:09:02Z"}]})
    # A task's module or name decides nothing: only the roles' result facts do.
    renamed = _r("collect", "fleetbench_collect_renamed", "ok", {"slots": [{"name": "slot9"}]})
    # benchmark_verdict is the verdict of plain ansible-playbook runs; fleetbench judges the
    # slots from the collected files instead (see test_run_verdict), so it decides nothing.
    verdict = _r("benchmark_verdict", "ansible.builtin.fail", "failed", {"msg": "1 slot failed"})
    outcome = host_outcome("h", (pulled, checked_out, started, renamed, collected, verdict),
                           True)
    assert outcome.status == "ok"
    assert outcome.image_digest == "sha256:abc"
    assert outcome.mad_commit == "2a2180ee87f3"
    assert "slot9" not in outcome.slots
    assert outcome.slots["slot1"] == {"status": "exited", "hip_visible_devices": None,
                                      "exit_code": 1, "oom_killed": True, "timed_out": False,
                                      "summary": "", "server_start_timed_out": False,
                                      "serving_start_timeout_s": None,
                                      "started": "2026-12-03T17:00:22Z",
                                      "finished": "2026-12-03T17:09:02Z"}
    assert outcome.slots["slot2"]["status"] == "skipped:gpus"
    unreachable = _r("benchmark", "fleetbench_slots", "unreachable", {"msg": "ssh: refused"})
    assert host_outcome("h", (pulled, unreachable), False).status == "unreachable"
    assert host_outcome("h", (pulled, started, collected), True).status == "ok"
    assert host_outcome("h", (pulled,), False).status == "failed:incomplete"
    # Fetched, but collect never said it was done: not ok.
    assert host_outcome("h", (pulled, started), True).status == "failed:incomplete"


def test_cleanup_playbook_only_for_hosts_collect_did_not_clean() -> None:
    clean = _fact("collect", {"cleaned": {"removed": ["c1"], "released": True, "error": None}})
    stuck = _fact("collect", {"cleaned": {"removed": [], "released": True,
                                          "error": "cannot list containers"}})
    asked_not = _fact("collect", {"cleaned": None})
    failed = _r("collect", "fleetbench_collect", "failed", {"msg": "disk full"})
    assert cleaned_by_collect((clean,))
    for results in ((stuck,), (asked_not,), (failed,), ()):
        assert not cleaned_by_collect(results)
    assert cleanup_status((), (clean,)) == "ok"
    assert cleanup_status((), (stuck,)) == "not run"
    gone = _r("cleanup", "fleetbench_cleanup", "unreachable", {"msg": "ssh: refused"})
    assert cleanup_status((gone,), (stuck,)).startswith("unreachable: ssh: refused")
    assert cleanup_status((_r("cleanup", "fleetbench_cleanup", "ok", {}),)) == "ok"


def test_a_loop_reports_the_item_that_failed() -> None:
    looped = _r("benchmark", "community.docker.docker_container", "unreachable", {
        "msg": "All items completed",
        "results": [{"item": "slot0", "changed": True},
                    {"item": "slot1", "unreachable": True,
                     "msg": "ssh: connect to host 127.0.2.13 port 2222: Connection refused"}]})
    assert looped.message == "ssh: connect to host 127.0.2.13 port 2222: Connection refused"
    outcome = host_outcome("h", (looped,), False)
    assert (outcome.status, outcome.reason) == ("unreachable", looped.message)
    assert _r("x", "y", "failed", {"msg": "plain", "results": [{"ok": 1}]}).message == "plain"


def test_drift_between_hosts() -> None:
    assert not drifted({"a": "sha256:1", "b": "sha256:1", "c": None})
    assert drifted({"a": "sha256:1", "b": "sha256:2"})


def test_secret_never_shows_itself() -> None:
    secret = Secret("hf_supersecret")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "{}".format(secret)):  # noqa: UP032
        assert "hf_supersecret" not in text
    assert secret.reveal() == "hf_supersecret"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_token_sources(tmp_path: Path) -> None:
    assert load_hf_token(None, {"HF_TOKEN": " hf_x_token "}).reveal() == "hf_x_token"  # type: ignore[union-attr]
    assert load_hf_token(None, {}) is None
    token_file = tmp_path / "token"
    token_file.write_text("hf_file_token\n")
    token_file.chmod(0o600)
    assert load_hf_token(token_file, {}).reveal() == "hf_file_token"  # type: ignore[union-attr]
    with pytest.raises(BadInput, match="cannot be read"):
        load_hf_token(tmp_path / "missing", {})


INVENTORY = "all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n"


@pytest.mark.parametrize(("args", "words"), [
    (["--dtype", "float64"], "--dtype"),
    (["--scenario", "warmup"], "--scenario"),
    (["--gpus", "128"], "more than the 64"),
    (["--gpus", "3", "--model", "Qwen/Qwen2.5-72B-Instruct"], "does not divide"),
    (["--gpus", "1", "--model", "meta-llama/Llama-3.1-405B-Instruct"], "405B"),
    (["--model", "/models/llama"], "Hugging Face id"),
    (["--timeout", "forever"], "not a duration"),
])
def test_bad_run_input_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch,
                                      args: list[str], words: str) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    inventory = tmp_path / "inv.yml"
    inventory.write_text(INVENTORY)
    runs = tmp_path / "runs"
    base = {"--model": "meta-llama/Llama-3.1-8B-Instruct", "--gpus": "8"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["run", "-i", str(inventory), "--runs-dir", str(runs)]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not runs.exists()


def test_gated_model_without_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(INVENTORY)
    assert main(["run", "-i", str(inventory), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "8", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_unreadable_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert main(["run", "-i", str(tmp_path / "missing.yml"), "--model",
                 "meta-llama/Llama-3.1-8B-Instruct", "--gpus", "8"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_planned_gpus_follow_each_groups_expected_mode(tmp_path: Path) -> None:
    from fleetbench.inventory import load_fleet

    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  children:\n"
        "    infer:\n      vars: {fleetbench_expected_compute: CPX}\n"
        "      hosts: {a: {ansible_host: 127.0.0.254}}\n"
        "    train:\n      vars: {fleetbench_expected_compute: SPX,"
        " fleetbench_expected_memory: NPS1}\n"
        "      hosts: {b: {ansible_host: 127.0.0.253}}\n"
    )
    fleet = load_fleet(inventory)
    assert fleet.planned_gpus == {"a": 64, "b": 8}
    assert fleet.planned_partition_bytes == {"a": 24 * 10**9, "b": 192 * 10**9}


def test_a_model_that_fits_spx_but_not_cpx_is_refused_for_cpx_hosts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  vars: {fleetbench_expected_compute: SPX}\n"
                         "  hosts: {a: {ansible_host: 127.0.0.254}}\n")
    from fleetbench.run import prepare

    # 70B in fp16 needs ~141 GB: one SPX GPU (192 GB) holds it, one CPX partition does not.
    request = prepare(inventory, "Qwen/Qwen2.5-72B-Instruct", 1, "float16", "latency")
    assert request.fleet.planned_gpus == {"a": 8}
    inventory.write_text("all:\n  hosts: {a: {ansible_host: 127.0.0.254}}\n")
    with pytest.raises(BadInput, match="does not fit 1 partition"):
        prepare(inventory, "Qwen/Qwen2.5-72B-Instruct", 1, "float16", "latency")
