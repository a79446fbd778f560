"""`fleetbench run` on a 4-host lab: real SSH, Docker engine, registry, MAD checkout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import FLEETBENCH, run_cli
from tests.integration.conftest import LabFleet, of_this_session

pytestmark = pytest.mark.lab

CANARY = "hf_CANARY_7f3a9c1e5b_never_leak_me"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # gated: the token is really needed


def run_args(lab: LabFleet, runs: Path, *extra: str) -> list[str]:
    return ["run", "-i", str(lab.inventory), "--model", MODEL, "--gpus", "8",
            "--scenario", "latency", "--slots", "2", "--runs-dir", str(runs), "--json", *extra]


def run_env(runs: Path) -> dict[str, str]:
    """The token, and a history of this test's own (no earlier run is a baseline)."""
    return {"HF_TOKEN": CANARY, "FLEETBENCH_HISTORY": str(runs / "history.sqlite")}


def fleetbench_run(lab: LabFleet, runs: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    done = run_cli(*run_args(lab, runs, *extra), env=run_env(runs))
    assert done.returncode in (0, 1), done.stderr
    summary = json.loads(done.stdout)
    assert CANARY not in done.stdout + done.stderr
    return done.returncode, summary, done.stdout + done.stderr


def manifest(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    return data


def fleetbench_containers() -> list[str]:
    # One API call: listing then inspecting races with the run removing its containers.
    client = docker.from_env()
    try:
        listed = client.api.containers(all=True, filters={"label": "fleetbench.run"})
        # This session's: their bind mounts are under its labs (others may run beside it).
        return [c["Names"][0].lstrip("/") for c in listed if of_this_session(c.get("Mounts"))]
    finally:
        client.close()


def wait_for_containers(proc: subprocess.Popen[str], enough: Any) -> None:
    """Wait until the run has started the containers ``enough(names)`` asks for."""
    deadline = time.monotonic() + 300  # pull, MAD, the model: slow on a busy machine
    while not enough(fleetbench_containers()):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop(proc)
            out, err = proc.communicate()
            pytest.fail(f"the benchmarks never started:\n{out[-3000:]}\n{err[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str]) -> None:
    """Never leave a run behind a failed test: it would hold the hosts' locks."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scan_for(needle: str, *roots: Path) -> list[Path]:
    hits = []
    data = needle.encode()
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if data in path.read_bytes():
                        hits.append(path)
                except OSError:
                    continue
    return hits


def summary_reports(host_dir: Path) -> list[Path]:
    return sorted(host_dir.glob("slot*/MAD/scripts/vllm/reports_float16*/summary/*_report.csv"))


def test_spx_host_is_skipped_others_collected_and_no_secret_left(
        run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab04", "compute=SPX", "memory=NPS1")
    try:
        code, summary, output = fleetbench_run(run_lab, tmp_path / "runs")
    finally:
        run_lab.restore("lab04")
    assert code == 1
    run_dir = Path(summary["run_dir"])
    data = manifest(run_dir)
    statuses = {h: e["status"] for h, e in data["hosts"].items()}
    assert statuses == {"lab01": "ok", "lab02": "ok", "lab03": "ok",
                        "lab04": "skipped:preflight"}
    assert "SPX" in data["hosts"]["lab04"]["reason"]
    for host in ("lab01", "lab02", "lab03"):
        host_dir = run_dir / "hosts" / host
        assert len(summary_reports(host_dir)) == 2  # one latency report per slot
        assert (host_dir / "slot0" / "benchmark.log").exists()
        assert list(host_dir.glob("slot1/MAD/scripts/perf_*.csv"))
        assert set(data["hosts"][host]["slots"]) == {"slot0", "slot1"}
        assert data["hosts"][host]["image_digest"].startswith("sha256:")
        steps = data["hosts"][host]["steps"]
        assert list(steps) == ["preflight", "mad", "image", "model", "benchmark", "collect"]
    assert not summary_reports(run_dir / "hosts" / "lab04")
    # The report's gate fails on the skipped host too, so a report built on its own later
    # (a nightly job, an AWX workflow) says what the run said.
    assert data["hosts"]["lab04"]["planned_slots"] == ["slot0", "slot1"]
    report = run_dir / "report" / "index.html"
    assert report.exists() and summary["report"]["gate_failed"] is True
    assert all(h in report.read_text() for h in ("lab01", "lab02", "lab03", "lab04"))
    rebuilt = run_cli("report", "build", run_dir, "--no-history", "--json")
    assert rebuilt.returncode == 1, rebuilt.stderr
    gate = json.loads(rebuilt.stdout)["gate"]
    assert [(h["host"], h["status"]) for h in gate["hosts_not_ok"]] == [
        ("lab04", "skipped:preflight")]
    assert "SPX" in gate["hosts_not_ok"][0]["reason"]
    assert [(m["host"], m["slot"]) for m in gate["missing_slots"]] == [
        ("lab04", "slot0"), ("lab04", "slot1")]
    assert all(m["missing"] == m["of"] > 0 for m in gate["missing_slots"])
    assert data["image"]["drift"] is False
    assert {e["cleanup"] for e in data["hosts"].values()} == {"ok"}
    assert not list(run_lab.root.glob("hosts/*/work/lock"))  # every lock released
    assert fleetbench_containers() == []
    hits = scan_for(CANARY, run_dir, run_lab.root, Path.home() / ".ansible", Path("/dev/shm"))
    assert hits == []
    assert CANARY not in output


def test_one_partition_slots_are_plausible_and_a_half_speed_host_stands_out(
        run_lab: LabFleet, tmp_path: Path) -> None:
    """One CPX/NPS4 partition per slot is the lab's slowest slot: its numbers stay below
    their roofline (the report's gate passes), and a host planted at half the speed is the
    outlier of every point, a host at 1.5x is not implausible."""
    run_lab.set("lab02", "factor=0.5")
    run_lab.set("lab03", "factor=1.5")
    try:
        runs = tmp_path / "runs"
        done = run_cli("run", "-i", str(run_lab.inventory), "--model", MODEL, "--gpus", "1",
                       "--scenario", "latency", "--slots", "2", "--runs-dir", str(runs),
                       "--json", env=run_env(runs))
    finally:
        run_lab.restore("lab02")
        run_lab.restore("lab03")
    assert done.returncode == 0, done.stderr
    report = json.loads(Path(json.loads(done.stdout)["report"]["json"]).read_text())
    assert report["gate"]["failed"] is False
    roofline = report["roofline"]
    assert roofline["implausible"] == [] and roofline["unbounded"] == []
    assert set(roofline["hosts"]) == {"lab01", "lab02", "lab03", "lab04"}
    fractions = [c["fraction_of_median"] for c in roofline["configurations"]]
    assert len(fractions) == 16 and all(0.2 < f < 0.8 for f in fractions)
    by_host = {(o["host"], o["slot"]) for o in report["outliers"]}
    assert by_host == {("lab02", "slot0"), ("lab02", "slot1")}
    assert len(report["outliers"]) == 2 * 16  # every point of both its slots
    assert all(0.9 < o["worse_by"] < 1.1 for o in report["outliers"])

    # A host planted 50x faster than the lab's numbers is beyond what one CPX partition can
    # do at all: implausible (a misconfigured host or a broken parser), and the gate fails.
    run_lab.set("lab04", "factor=50")
    try:
        done = run_cli("run", "-i", str(run_lab.inventory), "--model", MODEL, "--gpus", "1",
                       "--scenario", "latency", "--slots", "1", "--limit", "lab04",
                       "--runs-dir", str(runs), "--json", env=run_env(runs))
    finally:
        run_lab.restore("lab04")
    assert done.returncode == 1, done.stderr
    report = json.loads(Path(json.loads(done.stdout)["report"]["json"]).read_text())
    implausible = report["roofline"]["implausible"]
    assert implausible and {(i["host"], i["slot"]) for i in implausible} == {("lab04", "slot0")}
    assert all(i["fraction"] > 1 and i["gpu_model"] == "MI300X" for i in implausible)
    assert report["gate"]["failed"] is True


def test_failing_and_hanging_benchmarks(run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab01", "bench=fail")
    run_lab.set("lab02", "bench=hang")
    try:
        code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs", "--timeout", "6s",
                                          "--limit", "lab01,lab02,lab03")
    finally:
        run_lab.restore("lab01")
        run_lab.restore("lab02")
    assert code == 1
    run_dir = Path(summary["run_dir"])
    hosts = manifest(run_dir)["hosts"]
    assert set(hosts) == {"lab01", "lab02", "lab03"}
    assert hosts["lab01"]["status"] == "failed:benchmark"
    # Every vLLM call failed; MAD's script went on and exited 0: no results.
    assert {(s["status"], s["exit_code"]) for s in hosts["lab01"]["slots"].values()} == {
        ("failed:no-results", 0)}
    log = (run_dir / "hosts" / "lab01" / "slot0" / "benchmark.log").read_text()
    assert "torch.OutOfMemoryError" in log  # the failing benchmark's own words, collected
    assert hosts["lab02"]["status"] == "failed:benchmark"
    assert {s["status"] for s in hosts["lab02"]["slots"].values()} == {"failed:timeout"}
    assert (run_dir / "hosts" / "lab02" / "slot0" / "benchmark.log").exists()
    assert hosts["lab03"]["status"] == "ok"
    assert fleetbench_containers() == []

    # --resume starts nothing that ran: every slot here has its verdict.
    again = run_cli("run", "--resume", str(run_dir), "--no-report", "--json",
                    env=run_env(tmp_path / "runs"))
    assert again.returncode == 1, again.stderr
    assert manifest(run_dir)["attempts"][-1]["hosts"] == []
    # --rerun-failed runs the failed slots again, and keeps what finished.
    kept = run_dir / "hosts" / "lab03" / "slot0" / "benchmark.log"
    before = kept.stat().st_mtime_ns
    done = run_cli("run", "--resume", str(run_dir), "--rerun-failed", "--json",
                   env=run_env(tmp_path / "runs"))
    assert done.returncode == 0, done.stdout + done.stderr
    data = manifest(run_dir)
    assert {e["status"] for e in data["hosts"].values()} == {"ok"}
    assert data["attempts"][-1]["hosts"] == ["lab01", "lab02"]
    assert kept.stat().st_mtime_ns == before
    assert len(summary_reports(run_dir / "hosts" / "lab01")) == 2
    assert fleetbench_containers() == []


def test_slots_are_judged_by_their_results_not_the_scripts_exit_code(
        run_lab: LabFleet, tmp_path: Path) -> None:
    run_lab.set("lab01", "bench=fail")  # every vLLM call fails; the script exits 0
    run_lab.set("lab02", "bench=fail", "fail_after=3")  # 3 of the 8 latency points measured
    run_lab.set("lab03", "perf_csv=missing")  # every report written; the final mv exits 1
    try:
        code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs")
    finally:
        for host in ("lab01", "lab02", "lab03"):
            run_lab.restore(host)
    assert code == 1
    run_dir = Path(summary["run_dir"])
    hosts = manifest(run_dir)["hosts"]
    assert {h: e["status"] for h, e in hosts.items()} == {
        "lab01": "failed:benchmark", "lab02": "failed:benchmark", "lab03": "ok", "lab04": "ok"}

    for slot in hosts["lab01"]["slots"].values():
        assert (slot["status"], slot["exit_code"], slot["oom_killed"], slot["timed_out"]) == (
            "failed:no-results", 0, False, False)
        assert slot["summary"].startswith("latency: 0 of 8 points; the script exited 0; "
                                          "log shows: torch.OutOfMemoryError: HIP out of memory")
    assert hosts["lab01"]["reason"].startswith("2 of 2 slots not ok: slot0, slot1 "
                                               "failed:no-results (latency: 0 of 8 points;")
    for slot in hosts["lab02"]["slots"].values():
        assert (slot["status"], slot["exit_code"]) == ("failed:partial", 0)
        assert slot["summary"].startswith("latency: 3 of 8 points; the script exited 0; "
                                          "log shows: torch.OutOfMemoryError")
    for slot in hosts["lab03"]["slots"].values():
        assert (slot["status"], slot["exit_code"]) == ("ok", 1)
        assert slot["summary"].startswith("latency: 8 of 8 points; the script exited 1 with "
                                          "every report written; log shows: "
                                          "ModuleNotFoundError: No module named 'pandas'")
    assert {s["status"] for s in hosts["lab04"]["slots"].values()} == {"ok"}
    # What the verdicts were judged from came back: lab01's 1-byte perf files, lab03's reports.
    assert {p.stat().st_size for p in (run_dir / "hosts" / "lab01").glob(
        "slot*/MAD/scripts/perf_*.csv")} == {1}
    assert len(summary_reports(run_dir / "hosts" / "lab03")) == 2


def test_mad_checkout_without_the_script_fails_clearly(run_lab: LabFleet, tmp_path: Path) -> None:
    code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs", "--mad-ref", "v-era-ef",
                                      "--limit", "lab01")
    assert code == 1
    entry = manifest(Path(summary["run_dir"]))["hosts"]["lab01"]
    assert entry["status"] == "failed:mad"
    assert "vllm_benchmark_report.sh" in entry["reason"] and "--mad-ref" in entry["reason"]


class StartEvents:
    """Every slot container start the Docker engine reports while in the ``with`` block (a live
    stream: the engine keeps only its last 256 events, and other sessions share it)."""

    def __enter__(self) -> StartEvents:
        self.client = docker.from_env()
        self.stream = self.client.events(decode=True, filters={"type": "container",
                                                               "event": "start"})
        self.seen: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream is closed under the reader
            for event in self.stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                if "fleetbench.slot" not in attributes:
                    continue  # the model step's download container: not a slot
                self.seen.append((attributes.get("fleetbench.run", ""),
                                  attributes.get("name", "")))

    def __exit__(self, *exc: object) -> None:
        time.sleep(1)  # the last events on their way
        self.stream.close()
        self.thread.join(5)
        self.client.close()

    def of(self, run_id: str) -> list[str]:
        """The containers of ``run_id`` started, once per start."""
        return sorted(name for run, name in self.seen if run == run_id)


def record_state(lab: LabFleet, host: str) -> str:
    """The state of the host's record of the one run under way there ("" when none)."""
    # The newest run's (run ids sort by time): an interrupted run earlier in the session
    # may have left its folder there.
    records = sorted(lab.root.glob(f"hosts/{host}/work/runs/*/slots.json"))
    try:
        return str(json.loads(records[-1].read_text()).get("state")) if records else ""
    except (OSError, ValueError):
        return ""


def test_ssh_outages_are_waited_out_within_the_window_and_resume_collects_after_it(
        run_lab: LabFleet, tmp_path: Path) -> None:
    events = StartEvents().__enter__()
    run_lab.set("lab02", "bench=slow", "slow_s=8")  # about 64 s of benchmark
    run_lab.set("lab03", "bench=slow", "slow_s=4")  # about 32 s: both run at once
    proc = subprocess.Popen(
        [str(FLEETBENCH), *run_args(run_lab, tmp_path / "runs", "--limit", "lab01,lab02,lab03",
                                    "--reconnect-window", "55s", "--no-report")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **run_env(tmp_path / "runs")},
    )
    try:
        wait_for_containers(proc, lambda names: record_state(run_lab, "lab02") == "running"
                            and record_state(run_lab, "lab03") == "running")
        # lab02 is out of reach for 45 s while its slots run; lab03 until the run ends.
        run_lab.set("lab02", "sshd=stopped")
        run_lab.set("lab03", "sshd=stopped")
        time.sleep(45)
        run_lab.set("lab02", "sshd=running")
        out, err = proc.communicate(timeout=300)
    finally:
        stop(proc)
        run_lab.set("lab02", "sshd=running")
    try:
        assert proc.returncode == 1, err
        summary = json.loads(out)
        run_dir = Path(summary["run_dir"])
        hosts = manifest(run_dir)["hosts"]
        assert hosts["lab01"]["status"] == "ok"
        # Back within the window: collected as usual, with its reports.
        assert hosts["lab02"]["status"] == "ok", hosts["lab02"]
        assert len(summary_reports(run_dir / "hosts" / "lab02")) == 2
        assert hosts["lab03"]["status"] == "unreachable"
        assert "longer than the reconnect window (55s)" in hosts["lab03"]["reason"]
        assert "--resume" in hosts["lab03"]["reason"]
        assert hosts["lab03"]["cleanup"].startswith("not run")
    finally:
        run_lab.restore("lab03")
    # Its slots ended on the host meanwhile: --resume collects them, it does not run them.
    done = run_cli("run", "--resume", str(run_dir), "--no-report", "--json",
                   env=run_env(tmp_path / "runs"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert manifest(run_dir)["hosts"]["lab03"]["status"] == "ok"
    assert len(summary_reports(run_dir / "hosts" / "lab03")) == 2
    run_id = summary["run_id"]
    events.__exit__()
    started = events.of(run_id)
    assert len(started) == 6 and len(set(started)) == 6, started  # each slot once
    assert fleetbench_containers() == []
    assert not list(run_lab.root.glob(f"hosts/*/work/runs/{run_id}*"))  # pruned once collected
    assert not list(run_lab.root.glob("hosts/*/work/lock"))


def test_ctrl_c_removes_containers(run_lab: LabFleet, tmp_path: Path) -> None:
    for host in ("lab01", "lab02"):
        run_lab.set(host, "bench=hang")
    proc = subprocess.Popen(
        [str(FLEETBENCH), *run_args(run_lab, tmp_path / "runs", "--limit", "lab01,lab02")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **run_env(tmp_path / "runs")},
    )
    try:
        wait_for_containers(proc, lambda names: len(names) >= 4)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        stop(proc)
        for host in ("lab01", "lab02"):
            run_lab.restore(host)
    assert proc.returncode == 1, err
    assert fleetbench_containers() == []
    summary = json.loads(out)
    assert {e["status"] for e in summary["hosts"].values()} == {"failed:interrupted"}
    # The interrupted slots never ended: --resume starts them again.
    done = run_cli("run", "--resume", summary["run_dir"], "--no-report", "--json",
                   env=run_env(tmp_path / "runs"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert {e["status"] for e in json.loads(done.stdout)["hosts"].values()} == {"ok"}
    assert fleetbench_containers() == []


def test_a_host_held_by_another_run_is_skipped(run_lab: LabFleet, tmp_path: Path) -> None:
    lock = run_lab.root / "hosts" / "lab02" / "work" / "lock"
    lock.mkdir(parents=True)
    (lock / "owner.json").write_text(json.dumps({"run_id": "another-run", "since": "now"}))
    try:
        code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs", "--limit", "lab01,lab02")
    finally:
        held = json.loads((lock / "owner.json").read_text())
        for child in lock.iterdir():
            child.unlink()
        lock.rmdir()
    assert code == 1
    hosts = manifest(Path(summary["run_dir"]))["hosts"]
    assert hosts["lab02"]["status"] == "skipped:locked"
    assert "another-run" in hosts["lab02"]["reason"]
    assert hosts["lab01"]["status"] == "ok"
    assert held["run_id"] == "another-run"  # the other run's lock was left alone


def test_offline_fleet_gets_mad_from_the_controller(run_lab: LabFleet, tmp_path: Path) -> None:
    checkout = run_lab.root / "mad"
    code, summary, _ = fleetbench_run(run_lab, tmp_path / "runs", "--mad-sync", str(checkout),
                                      "--mad-ref", "v-era-d", "--limit", "lab01")
    assert code == 0
    entry = manifest(Path(summary["run_dir"]))["hosts"]["lab01"]
    tag = subprocess.run(["git", "-C", str(checkout), "rev-parse", "v-era-d^{commit}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert entry["mad_commit"] == tag
    assert len(summary_reports(Path(summary["run_dir"]) / "hosts" / "lab01")) == 2
