"""Fleet statistics, outliers, missing results, thresholds, baseline comparison, gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbench.errors import BadInput
from fleetbench.reports.analysis import analyse
from fleetbench.reports.fleet import FleetRun, HostInfo, HostRecord, SlotInfo, collect_run
from fleetbench.reports.gate import GateOptions
from fleetbench.reports.records import Record
from fleetbench.reports.stats import (
    compare_with_baseline,
    find_drift,
    find_missing,
    find_outliers,
    fleet_statistics,
    higher_is_better,
    planned_slots,
    worse_by,
)
from fleetbench.reports.thresholds import Threshold, check_thresholds, load_thresholds
from tests.unit.report_fleet.fleet_runs import (
    CONFIGURATIONS,
    Edit,
    HostSpec,
    healthy_fleet,
    write_run,
)


def record(metric: str, value: float | None, *, batch: int = 1) -> Record:
    scenario = "throughput" if metric.startswith("throughput") else "latency"
    return Record(
        model="M", scenario=scenario, tp=1,
        batch_size=batch if scenario == "latency" else None,
        num_prompts=None if scenario == "latency" else 100, max_concurrency=None,
        input_len=128, output_len=128, dtype="float16", metric=metric, value=value,
        unit="tok/s" if scenario == "throughput" else "ms",
    )


def rows(metric: str, values: dict[str, float | None]) -> list[HostRecord]:
    return [HostRecord(host, "slot0", record(metric, value)) for host, value in values.items()]


def fleet(rows_: list[HostRecord], statuses: dict[str, str] | None = None) -> FleetRun:
    names = list(dict.fromkeys(r.host for r in rows_)) + list(statuses or {})
    hosts = tuple(
        HostInfo(name=name, status=(statuses or {}).get(name, "ok"),
                 slots=(SlotInfo("slot0", "ok"),))
        for name in dict.fromkeys(names)
    )
    return FleetRun("r1", Path("/nonexistent"), "2026-01-01T00:00:00Z", None, {}, hosts,
                    tuple(rows_))


# --- statistics ---------------------------------------------------------------------------


def test_fleet_statistics_median_min_max_spread_count() -> None:
    data = rows("throughput_total", {"a": 100.0, "b": 110.0, "c": 90.0, "d": None})
    (stat,) = fleet_statistics(data)
    assert (stat.count, stat.failed) == (3, 1)
    assert (stat.median, stat.minimum, stat.maximum) == (100.0, 90.0, 110.0)
    assert stat.spread == pytest.approx(0.2)
    assert stat.mad == 10.0


def test_direction_follows_the_metric() -> None:
    assert higher_is_better("throughput_total") and higher_is_better("throughput_gen")
    for metric in ("latency", "latency_per_token", "ttft_median", "tpot_median",
                   "itl_median", "e2el_median"):
        assert not higher_is_better(metric)
    assert worse_by(90, 100, "throughput_total") == pytest.approx(0.1)
    assert worse_by(110, 100, "latency") == pytest.approx(0.1)
    assert worse_by(110, 100, "throughput_total") == pytest.approx(-0.1)


# --- outliers -----------------------------------------------------------------------------


def test_a_slow_throughput_host_is_an_outlier_a_fast_one_is_not() -> None:
    data = rows("throughput_total",
                {"a": 100.0, "b": 101.0, "c": 99.0, "d": 100.5, "slow": 80.0, "fast": 125.0})
    outliers = find_outliers(data, fleet_statistics(data))
    assert [(o.host, round(o.worse_by, 3)) for o in outliers] == [("slow", 0.202)]


def test_for_latency_higher_is_worse() -> None:
    data = rows("latency", {"a": 100.0, "b": 101.0, "c": 99.0, "slow": 130.0, "fast": 70.0})
    assert [o.host for o in find_outliers(data, fleet_statistics(data))] == ["slow"]


def test_small_gaps_are_not_outliers_even_in_a_tight_fleet() -> None:
    # MAD is tiny, so 3 MAD is exceeded, but 4 % is under the 5 % minimum gap.
    data = rows("throughput_total", {"a": 100.0, "b": 100.0, "c": 100.0, "d": 96.0})
    stats = fleet_statistics(data)
    assert find_outliers(data, stats) == []
    assert [o.host for o in find_outliers(data, stats, min_gap=0.03)] == ["d"]


def test_a_noisy_fleet_needs_more_than_the_gap() -> None:
    # e is 9 % below the median, but the fleet scatters by ~7 %: within 3 scaled MADs.
    data = rows("throughput_total", {"a": 100.0, "b": 106.0, "c": 94.0, "d": 112.0,
                                     "e": 88.0, "f": 92.0})
    stats = fleet_statistics(data)
    assert find_outliers(data, stats) == []
    assert [o.host for o in find_outliers(data, stats, mads=0.5)] == ["e"]


def test_two_hosts_are_too_few_to_name_an_outlier() -> None:
    data = rows("throughput_total", {"a": 100.0, "b": 50.0})
    assert find_outliers(data, fleet_statistics(data)) == []


def test_planted_slow_host_is_flagged_on_every_configuration(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, healthy_fleet(4, lab03=HostSpec(factor=0.85))))
    analysis = analyse(run)
    assert {o.host for o in analysis.outliers} == {"lab03"}
    assert len(analysis.outliers) == 64 * 2
    assert all(o.worse_by > 0.1 for o in analysis.outliers)
    assert not analysis.gate.failed  # outliers are findings unless asked
    strict = analyse(run, options=GateOptions(fail_on_outliers=True))
    assert strict.gate.failed
    assert any("lab03/slot0" in line for line in strict.gate.headlines)


def test_a_slow_slot_is_flagged_alone(tmp_path: Path) -> None:
    run = collect_run(write_run(tmp_path, healthy_fleet(3, lab02=HostSpec(slot_factors={1: 0.7}))))
    assert {(o.host, o.slot) for o in analyse(run).outliers} == {("lab02", "slot1")}


# --- missing results and failures ------------------------------------------------------------


def test_missing_results_of_every_planned_slot(tmp_path: Path) -> None:
    hosts = healthy_fleet(
        2,
        lab03=HostSpec(edits=(Edit("throughput", 1, slots=(0,)),)),
        lab04=HostSpec(status="failed:benchmark", reason="exit 1",
                       edits=(Edit("serving", 0),)),
        lab05=HostSpec(status="unreachable", reports=False),
        lab06=HostSpec(status="failed:image", reports=False),
    )
    run = collect_run(write_run(tmp_path, hosts))
    missing = find_missing(run)
    summary = sorted({(m.host, m.slot, m.configuration[1], m.configuration[-1]) for m in missing})
    assert ("lab03", "slot0", "throughput", "throughput_total") in summary
    assert ("lab03", "slot1", "throughput", "throughput_total") not in summary
    # One throughput row = 2 metrics; one serving row = 6 metrics on each of 2 slots.
    assert sum(1 for m in missing if m.host == "lab03") == 2
    assert sum(1 for m in missing if m.host == "lab04") == 12
    # Hosts that never ran lack every result on each planned slot: nothing lost.
    for host in ("lab05", "lab06"):
        lacking = [(m.slot, m.configuration) for m in missing if m.host == host]
        assert len(lacking) == 2 * CONFIGURATIONS
        assert {slot for slot, _ in lacking} == {"slot0", "slot1"}
    assert not {m.host for m in missing} & {"lab01", "lab02"}


def test_a_host_that_ran_but_delivered_nothing_misses_everything() -> None:
    data = rows("throughput_total", {"a": 1.0, "b": 2.0})
    run = fleet(data, {"empty": "failed:benchmark", "down": "unreachable"})
    assert [(m.host, m.slot) for m in find_missing(run)] == [("empty", "slot0"),
                                                             ("down", "slot0")]


def test_a_host_the_manifest_knows_no_slot_of_misses_everything_as_one() -> None:
    # An older manifest: no planned_slots, and an unreachable host lists no slot.
    data = rows("throughput_total", {"a": 1.0, "b": 2.0})
    run = fleet(data)
    down = HostInfo(name="down", status="unreachable", reason="ssh: refused")
    run = FleetRun("r1", Path("/nonexistent"), None, None, {}, (*run.hosts, down), run.rows)
    assert [(m.host, m.slot) for m in find_missing(run)] == [("down", "host")]
    assert planned_slots(down) == ("host",)
    planned = HostInfo(name="down", status="unreachable", planned_slots=("slot0", "slot1"),
                       slots=(SlotInfo("slot2", "skipped:gpus"),))
    assert planned_slots(planned) == ("slot0", "slot1", "slot2")


def test_a_slot_skipped_for_want_of_gpus_misses_its_results() -> None:
    data = rows("throughput_total", {"a": 1.0, "b": 2.0})
    run = fleet(data)
    short = HostInfo(name="short", status="ok", planned_slots=("slot0",),
                     slots=(SlotInfo("slot0", "skipped:gpus"),))
    run = FleetRun("r1", Path("/nonexistent"), None, None, {}, (*run.hosts, short), run.rows)
    analysis = analyse(run)
    assert [(m.host, m.slot) for m in analysis.missing] == [("short", "slot0")]
    assert analysis.gate.failed
    assert analysis.gate.headlines == (
        "1 planned result missing on 1 host slot (short/slot0)",)


def test_failed_measurements_are_counted_not_averaged(tmp_path: Path) -> None:
    edit = Edit("throughput", 0, "throughput_tot (tok/sec)", slots=(1,))
    run = collect_run(write_run(tmp_path, healthy_fleet(3, lab02=HostSpec(edits=(edit,)))))
    analysis = analyse(run)
    assert [(r.host, r.slot, r.record.metric) for r in analysis.failures] == [
        ("lab02", "slot1", "throughput_total")]
    stat = next(s for s in analysis.stats if s.metric == "throughput_total"
                and s.configuration[4] == 4000)
    assert (stat.count, stat.failed) == (5, 1)
    assert not find_missing(run)  # a failed measurement is not a missing one


# --- thresholds ---------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_threshold_file_schema(tmp_path: Path) -> None:
    rules = load_thresholds(write(tmp_path / "t.yml", """
- model: meta-llama/Llama-3.1-8B-Instruct
  scenario: throughput
  metric: throughput_total
  input_len: 128
  output_len: 2048
  min: 9000
- metric: latency
  batch_size: 1
  max: 2000.5
  of: median
"""))
    assert rules[0].model == "Llama-3.1-8B-Instruct"
    assert rules[0].filters == (("input_len", 128), ("output_len", 2048))
    assert (rules[0].minimum, rules[0].maximum, rules[0].of) == (9000.0, None, "each")
    assert (rules[1].maximum, rules[1].of) == (2000.5, "median")
    wrapped = load_thresholds(write(tmp_path / "w.yml", "thresholds:\n  - metric: latency\n"
                                    "    max: 5\n"))
    assert wrapped[0].metric == "latency"


@pytest.mark.parametrize(("text", "message"), [
    ("- metric: speed\n  min: 1\n", "metric 'speed' is not one of"),
    ("- metric: latency\n", "give min and/or max"),
    ("- metric: latency\n  max: fast\n", "max must be a number"),
    ("- metric: latency\n  min: 5\n  max: 1\n", "min 5 is above max 1"),
    ("- metric: latency\n  max: 1\n  batch: 8\n", "unknown key batch"),
    ("- metric: latency\n  max: 1\n  batch_size: eight\n", "batch_size must be a whole number"),
    ("- metric: latency\n  max: 1\n  scenario: offline\n", "scenario 'offline'"),
    ("- metric: latency\n  max: 1\n  of: mean\n", "of: 'mean'"),
    ("metric: latency\nmax: 1\n", "expected a list"),
    ("- [unclosed\n", "not valid YAML"),
    ("- just text\n", "is not a mapping"),
])
def test_bad_threshold_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        load_thresholds(write(tmp_path / "t.yml", text))


def test_missing_threshold_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read the thresholds file"):
        load_thresholds(tmp_path / "nope.yml")


def test_thresholds_each_slot_and_fleet_median() -> None:
    data = rows("throughput_total", {"a": 100.0, "b": 90.0, "c": 95.0})
    stats = fleet_statistics(data)
    each = Threshold(metric="throughput_total", minimum=92.0)
    median = Threshold(metric="throughput_total", minimum=96.0, of="median")
    other_model = Threshold(metric="throughput_total", minimum=1e9, model="Other")
    violations, unmatched = check_thresholds(data, stats, [each, median, other_model])
    assert [(v.host, v.value) for v in violations] == [("b", 90.0), (None, 95.0)]
    assert unmatched == [other_model]


# --- baseline and gate -------------------------------------------------------------------------


def test_baseline_regression_beyond_tolerance() -> None:
    base = fleet_statistics(rows("throughput_total", {"a": 100.0, "b": 100.0, "c": 100.0}))
    now = fleet_statistics(rows("throughput_total", {"a": 94.0, "b": 96.0, "c": 95.5}))
    (comparison,) = compare_with_baseline(now, base)
    assert comparison.worse_by == pytest.approx(0.045)
    assert not comparison.regression
    (strict,) = compare_with_baseline(now, base, tolerance=0.04)
    assert strict.regression
    faster = fleet_statistics(rows("latency", {"a": 50.0, "b": 50.0, "c": 50.0}))
    slower = fleet_statistics(rows("latency", {"a": 60.0, "b": 60.0, "c": 60.0}))
    assert compare_with_baseline(slower, faster)[0].regression
    assert not compare_with_baseline(faster, slower)[0].regression


def test_planted_regression_fails_the_gate(tmp_path: Path) -> None:
    base = collect_run(write_run(tmp_path / "a", healthy_fleet(3)))
    now = collect_run(write_run(tmp_path / "b", healthy_fleet(
        3, **{h: HostSpec(factor=0.9) for h in ("lab01", "lab02", "lab03")})))
    analysis = analyse(now, baseline_rows=base.rows)
    assert len(analysis.regressions) == 64
    assert analysis.gate.failed
    assert analysis.gate.headlines[0].startswith("64 regressions against the baseline")
    assert not analyse(base, baseline_rows=base.rows).gate.failed


def test_no_results_at_all_fails_the_gate() -> None:
    run = fleet([], {"a": "ok"})
    assert analyse(run).gate.reasons == (
        "no benchmark results in the run — see the host statuses",)


# --- hosts not ok and planned results missing fail the gate ----------------------------------


def test_an_unreachable_host_fails_the_gate_with_its_status_reason_and_missing_results(
        tmp_path: Path) -> None:
    hosts = healthy_fleet(
        2,
        lab03=HostSpec(status="unreachable", reports=False,
                       reason="ssh: connect to host 127.0.0.253 port 22: Connection refused\n"
                              "second line"),
    )
    analysis = analyse(collect_run(write_run(tmp_path, hosts)))
    gate = analysis.gate
    assert gate.failed
    assert [h.to_dict() for h in gate.hosts_not_ok] == [
        {"host": "lab03", "status": "unreachable",
         "reason": "ssh: connect to host 127.0.0.253 port 22: Connection refused"}]
    assert [m.to_dict() for m in gate.missing_slots] == [
        {"host": "lab03", "slot": "slot0", "missing": CONFIGURATIONS, "of": CONFIGURATIONS},
        {"host": "lab03", "slot": "slot1", "missing": CONFIGURATIONS, "of": CONFIGURATIONS}]
    assert gate.missing_results == 2 * CONFIGURATIONS == len(analysis.missing)
    assert gate.headlines == (
        "1 host not ok: lab03 unreachable",
        f"{2 * CONFIGURATIONS} planned results missing on 2 host slots (lab03/slot0, "
        "lab03/slot1)",
    )
    assert gate.reasons[0] == ("host not ok — lab03: unreachable (ssh: connect to host "
                               "127.0.0.253 port 22: Connection refused)")
    assert gate.reasons[1].startswith(
        f"missing results — lab03/slot0: {CONFIGURATIONS} of {CONFIGURATIONS} planned results "
        "(latency tp1 bs1 128/128 latency; ")
    assert gate.reasons[1].endswith(" …)")
    assert len(gate.reasons) == 3


@pytest.mark.parametrize("status", ["failed:image", "skipped:preflight", "skipped:locked",
                                    "failed:incomplete", "failed:benchmark"])
def test_every_host_not_ok_fails_the_gate(tmp_path: Path, status: str) -> None:
    # Even with every result in place: the host's status says something went wrong.
    hosts = healthy_fleet(3, lab02=HostSpec(status=status, reason="why"))
    gate = analyse(collect_run(write_run(tmp_path, hosts))).gate
    assert gate.failed
    assert gate.headlines == (f"1 host not ok: lab02 {status}",)
    assert gate.reasons == (f"host not ok — lab02: {status} (why)",)


def test_a_healthy_fleet_passes_with_empty_lists(tmp_path: Path) -> None:
    gate = analyse(collect_run(write_run(tmp_path, healthy_fleet(3)))).gate
    assert gate.to_dict() == {"failed": False, "headlines": [], "reasons": [],
                              "hosts_not_ok": [], "missing_results": 0, "missing_slots": []}


def test_many_hosts_not_ok_are_named_in_the_headline_up_to_five(tmp_path: Path) -> None:
    hosts = healthy_fleet(2, **{f"gpu{i}": HostSpec(status="unreachable", reports=False)
                                for i in range(1, 8)})
    gate = analyse(collect_run(write_run(tmp_path, hosts))).gate
    assert gate.headlines[0] == ("7 hosts not ok: gpu1 unreachable, gpu2 unreachable, gpu3 "
                                 "unreachable, gpu4 unreachable, gpu5 unreachable …")
    assert len(gate.hosts_not_ok) == 7
    assert sum(1 for r in gate.reasons if r.startswith("host not ok — ")) == 7


def test_drift_of_image_digest_and_partition(tmp_path: Path) -> None:
    hosts = healthy_fleet(3, lab03=HostSpec(digest="sha256:" + "ff" * 32, compute="SPX"))
    drift = {d.name: d for d in find_drift(collect_run(write_run(tmp_path, hosts)))}
    assert drift["image digest"].drifted
    assert drift["image digest"].usual == "sha256:" + "a1" * 32
    assert drift["compute partition"].drifted
    assert drift["compute partition"].values["lab03"] == "SPX"
    assert not drift["memory partition"].drifted
    assert not drift["MAD commit"].drifted


@pytest.mark.parametrize("field", ["regression_tolerance", "outlier_mads", "outlier_min_gap"])
def test_gate_options_reject_negative_numbers(field: str) -> None:
    with pytest.raises(BadInput):
        GateOptions(**{field: -1.0})  # type: ignore[arg-type]
