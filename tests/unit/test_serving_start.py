"""A serving slot whose vLLM server does not come up: the host's supervisor kills it after
the serving start timeout (not the slot's --timeout), the host's later waves go on, and the
controller's verdict is failed:server-start with the last lines the server logged."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.secrets import Secret
from fleetbench.serving_start import serving_start_timeouts
from fleetbench.slot_verdict import (
    SERVER_START,
    SlotFiles,
    judge_slot,
    judge_slots,
    mask_secrets,
    server_log_tail,
)
from tests.conftest import module_util

# What MAD's run_vllm.py and vLLM print around a server start (the lab's stand-in says the
# same words), and the era D script's readiness loop that prints nothing.
STARTING = (
    "vllm serve meta-llama/Llama-3.1-8B-Instruct --dtype float16 -tp 8 "
    "--no-enable-prefix-caching --disable-uvicorn-access-log\n"
    "INFO 06-16 12:00:01 [api_server.py:1287] vLLM API server version 0.9.1\n"
    "INFO 06-16 12:00:02 [config.py:3362] Using max model len 131072\n"
)
UP = ("INFO 06-16 12:01:10 [api_server.py:1336] Starting vLLM API server 0 on "
      "http://0.0.0.0:8000\n"
      "INFO:     Started server process [77]\n"
      "INFO:     Application startup complete.\n")


@pytest.fixture(scope="module")
def slots() -> ModuleType:
    return module_util("fleetbench_slots")


# --- telling a server that is not up from the log -------------------------------------------


def test_a_server_that_starts_and_never_serves_is_overdue_after_the_limit(
        slots: ModuleType) -> None:
    watch = slots.ServerStartWatch("/nonexistent")
    watch.feed("[INFO] LATENCY\nmeta-llama/Llama-3.1-8B-Instruct latency 1 8 128 128\n", 0.0)
    assert not watch.overdue(10_000.0, 60)  # no server started: latency may take hours
    watch.feed(STARTING, 100.0)
    assert not watch.overdue(160.0, 60)
    assert watch.overdue(161.0, 60)
    assert not watch.overdue(10_000.0, 0)  # 0: no limit


def test_a_server_that_comes_up_is_not_and_each_new_start_gets_the_whole_limit(
        slots: ModuleType) -> None:
    watch = slots.ServerStartWatch("/nonexistent")
    watch.feed(STARTING, 0.0)
    watch.feed(UP, 50.0)
    assert not watch.overdue(5_000.0, 60)
    # run_vllm.py starts a server per serving point
    watch.feed("+ VLLM_USE_V1=1 vllm serve org/model -tp 1\n", 1_000.0)
    assert not watch.overdue(1_060.0, 60)
    assert watch.overdue(1_061.0, 60)


def test_a_line_is_judged_once_whole_and_vllm_bench_serve_is_no_server(
        slots: ModuleType) -> None:
    watch = slots.ServerStartWatch("/nonexistent")
    watch.feed("vllm bench serve --model org/model --max-concurrency 128\n", 0.0)
    assert watch.waiting_since is None
    watch.feed("vllm se", 1.0)  # half a line: not yet
    assert watch.waiting_since is None
    watch.feed("rve org/model\n", 2.0)
    assert watch.waiting_since == 2.0


def test_the_watch_reads_the_log_as_it_grows_and_starts_over_with_a_new_one(
        slots: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "benchmark.log"
    watch = slots.ServerStartWatch(str(log))
    watch.look(0.0)  # no log yet
    log.write_text("MODEL: org/model\n")
    watch.look(1.0)
    assert watch.waiting_since is None
    with log.open("a") as handle:
        handle.write(STARTING)
    watch.look(2.0)
    assert watch.waiting_since == 2.0
    with log.open("a") as handle:
        handle.write(UP)
    watch.look(3.0)
    assert watch.waiting_since is None
    log.write_text(STARTING[:60] + "\n")  # a re-run's fresh log
    watch.look(4.0)
    assert watch.waiting_since == 4.0


# --- the supervisor ---------------------------------------------------------------------------


class Host:
    """The Docker engine of a host whose slot containers run until killed, and a clock that
    moves only when the supervisor sleeps."""

    def __init__(self, slots: ModuleType, root: Path) -> None:
        self.slots = slots
        self.root = root
        # the supervisor stamps starts with the real clock and times slots out against them
        self.now = time.time()
        self.running: set[str] = set()
        self.killed: list[tuple[str, float]] = []
        self.started: list[tuple[str, float]] = []

    def docker(self, args: list[str], timeout: int = 120) -> tuple[int, str, str]:
        verb, container = args[0], args[-1]
        if verb == "start":
            self.running.add(container)
            self.started.append((container, self.now))
            # every slot starts a server that never comes up
            folder = self.root / container.rsplit("-", 1)[-1]
            folder.mkdir(exist_ok=True)
            (folder / "benchmark.log").write_text(
                "[INFO] SERVING\n" + STARTING + "INFO Registering CUDA graph addresses\n")
        elif verb == "kill":
            self.running.discard(container)
            self.killed.append((container, self.now))
        return 0, "", ""

    def states(self, names: list[str]) -> dict[str, dict[str, Any]]:
        return {name: {"status": "running" if name in self.running else "exited",
                       "exit_code": 0 if name in self.running else 137, "oom_killed": False,
                       "started": None, "finished": None} for name in names}

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_supervisor_kills_a_slot_whose_server_is_not_up_and_the_next_wave_goes_on(
        slots: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(slots, tmp_path)
    monkeypatch.setattr(slots, "docker", host.docker)
    monkeypatch.setattr(slots, "container_states", host.states)
    waves = [[{"name": "slot0", "container": "fleetbench-r-h-slot0", "index": 0}],
             [{"name": "slot1", "container": "fleetbench-r-h-slot1", "index": 1}]]
    slots.write_record(str(tmp_path), slots.new_record(
        {}, run_id="r", host="h", controller={}, waves=waves, timeout_s=6 * 3600, token="",
        serving_start_timeout_s=120))
    supervisor = slots.Supervisor(str(tmp_path), clock=lambda: host.now, sleep=host.sleep)
    supervisor.run()
    record = slots.read_record(str(tmp_path))
    assert record["state"] == "done"
    # each slot killed about 2 minutes after its server started, never at the 6 h timeout
    assert [name for name, _ in host.killed] == ["fleetbench-r-h-slot0", "fleetbench-r-h-slot1"]
    for (_, started), (_, killed) in zip(host.started, host.killed, strict=True):
        assert 120 < killed - started <= 125
    # the second wave started as soon as the first slot was killed
    assert host.started[1][1] - host.killed[0][1] <= 5
    results = {r["name"]: r for r in slots.slot_results(record)}
    for name in ("slot0", "slot1"):
        assert record["slots"][name]["server_start_timed_out"] is True
        assert record["slots"][name]["timed_out"] is False
        assert results[name]["status"] == "failed:server-start"
        assert results[name]["server_start_timed_out"] is True
        assert results[name]["serving_start_timeout_s"] == 120
        assert "vLLM server was not up within 120s" in results[name]["summary"]


def test_without_a_limit_the_supervisor_leaves_servers_alone(
        slots: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(slots, tmp_path)
    monkeypatch.setattr(slots, "docker", host.docker)
    monkeypatch.setattr(slots, "container_states", host.states)
    waves = [[{"name": "slot0", "container": "fleetbench-r-h-slot0", "index": 0}]]
    slots.write_record(str(tmp_path), slots.new_record(
        {}, run_id="r", host="h", controller={}, waves=waves, timeout_s=600, token=""))
    slots.Supervisor(str(tmp_path), clock=lambda: host.now, sleep=host.sleep).run()
    record = slots.read_record(str(tmp_path))
    # only the slot's own timeout ended it
    assert record["slots"]["slot0"]["timed_out"] is True
    assert record["slots"]["slot0"]["server_start_timed_out"] is False
    assert 599 <= host.killed[0][1] - host.started[0][1] <= 605


# --- the controller's verdict -----------------------------------------------------------------


def test_the_verdict_names_the_limit_the_points_and_the_servers_last_lines() -> None:
    log = ("[INFO] LATENCY\nmeta-llama/Llama-3.1-8B-Instruct latency 1 8 128 128\n"
           "Avg latency: 0.5 seconds\n[INFO] SERVING\n"
           "meta-llama/Llama-3.1-8B-Instruct serving 252 8 128 128 128\n"
           + STARTING
           + "INFO 06-16 12:00:03 [llm_engine.py:240] Initializing a V0 LLM engine with "
             "HF_TOKEN=hf_abcdefghijklmnop\n\n"
           "INFO 06-16 12:00:04 [custom_all_reduce.py:146] Registering CUDA graph addresses\n")
    verdict = judge_slot("serving", SlotFiles(log=log), exit_code=137,
                         server_start_timed_out=True, serving_start_timeout_s=1200,
                         secrets=[Secret("hf_abcdefghijklmnop")])
    assert verdict.status == SERVER_START == "failed:server-start"
    assert verdict.summary.startswith(
        "the vLLM server was not up within 1200s, the slot was killed; serving: ")
    assert "last lines of its log: " in verdict.summary
    tail = verdict.summary.split("last lines of its log: ", 1)[1].split(" | ")
    assert tail[0].startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct --dtype float16")
    assert tail[-1].endswith("Registering CUDA graph addresses")
    assert len(tail) == 5  # the last lines, blank ones left out
    assert "hf_abcdefghijklmnop" not in verdict.summary
    assert "HF_TOKEN=********" in verdict.summary


def test_a_slot_killed_at_its_own_timeout_stays_a_timeout() -> None:
    verdict = judge_slot("serving", SlotFiles(log=STARTING), timed_out=True,
                         server_start_timed_out=True, timeout_s=600)
    assert verdict.status == "failed:timeout"


def test_judge_slots_reads_the_hosts_word_from_the_manifest_entry(tmp_path: Path) -> None:
    slot = tmp_path / "slot0"
    slot.mkdir()
    (slot / "benchmark.log").write_text(STARTING)
    judged = judge_slots(tmp_path, {"slot0": {"status": "failed:server-start", "exit_code": 137,
                                              "server_start_timed_out": True,
                                              "serving_start_timeout_s": 90}}, "serving")
    assert judged["slot0"]["status"] == "failed:server-start"
    assert "not up within 90s" in judged["slot0"]["summary"]
    assert judged["slot0"]["server_start_timed_out"] is True


def test_the_tail_is_the_whole_logs_when_no_server_start_shows() -> None:
    assert server_log_tail("a\n\nb\nc\n", lines=2) == ["b", "c"]
    assert server_log_tail("x\n" + STARTING + "y\n", lines=10)[0].startswith("vllm serve ")
    # a server that came up, then one that did not: the second one's lines
    second = server_log_tail("x\n" + STARTING + UP + "bench\n" + STARTING + "stuck\n", lines=10)
    assert second[0].startswith("vllm serve ") and second[-1] == "stuck"
    assert len(second) == 4  # its three lines and "stuck"


def test_what_looks_like_a_secret_is_masked() -> None:
    text = ("HF_TOKEN=hf_0123456789abcdef MAD_SECRETS_HFTOKEN=abc Authorization: Bearer xyz "
            "max_num_batched_tokens=8192 plain")
    masked = mask_secrets(text, [Secret("plain")])
    assert masked == ("HF_TOKEN=******** MAD_SECRETS_HFTOKEN=******** Authorization: Bearer "
                      "******** max_num_batched_tokens=8192 ********")


# --- the limit --------------------------------------------------------------------------------


def test_the_limit_comes_from_the_option_the_inventory_or_the_default() -> None:
    host_vars = {"a": {"fleetbench_serving_start_timeout": "5m"}, "b": {},
                 "c": {"fleetbench_serving_start_timeout": 90}}
    assert serving_start_timeouts(host_vars) == {"a": 300, "b": 1200, "c": 90}
    assert serving_start_timeouts(host_vars, "45s") == {"a": 45, "b": 45, "c": 45}
    with pytest.raises(BadInput, match="fleetbench_serving_start_timeout of a 'soon' is not"):
        serving_start_timeouts({"a": {"fleetbench_serving_start_timeout": "soon"}})
    with pytest.raises(BadInput, match="--serving-start-timeout 'x' is not a duration"):
        serving_start_timeouts(host_vars, "x")


INVENTORY = ("all:\n  hosts:\n    gpu-a:\n      ansible_host: 127.0.0.254\n"
             "      fleetbench_serving_start_timeout: {value}\n")


@pytest.mark.parametrize(("value", "args", "words"), [
    ("20m", ["--serving-start-timeout", "whenever"],
     "--serving-start-timeout 'whenever' is not a duration"),
    ("later", [], "fleetbench_serving_start_timeout of gpu-a 'later' is not a duration"),
])
def test_a_bad_limit_is_bad_input_and_starts_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        value: str, args: list[str], words: str) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    inventory = tmp_path / "inv.yml"
    inventory.write_text(INVENTORY.format(value=value))
    runs = tmp_path / "runs"
    assert main(["run", "-i", str(inventory), "--model", "meta-llama/Llama-3.1-8B-Instruct",
                 "--gpus", "8", "--runs-dir", str(runs), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not runs.exists()
