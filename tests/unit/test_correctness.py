"""The correctness probe's verdict on the controller: degenerate answers, the fleet's
majority, expected answers, and what it does to a run's manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbench.correctness import (
    FAILED,
    Answer,
    Probe,
    degenerate,
    judge,
    load_expected,
    probe_from_dict,
    record,
)
from fleetbench.errors import BadInput

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GOOD = {
    "capital": " Paris. It is also the largest city in France and its political, economic "
               "and cultural centre.",
    "arithmetic": " 42",
    "counting": " four, five, six, seven, eight, nine, ten.",
    "translation": " Guten Morgen, mein Freund.",
}


def probe(host: str, slot: str, answers: dict[str, str] | None = None, *, tp: int = 8,
          dtype: str = "float16", model: str = MODEL, error: str = "") -> Probe:
    texts = GOOD if answers is None else answers
    return Probe(host, slot, model, dtype, tp,
                 tuple(Answer(pid, f"prompt {pid}", text) for pid, text in texts.items()),
                 method="offline", error=error)


@pytest.mark.parametrize("text", [
    " Paris. It is also the largest city in France.",
    " 42",
    "4",
    " four, five, six, seven, eight, nine, ten.",
    " Guten Morgen, mein Freund.",
    # A list is no loop: its items differ.
    " 1. apples 2. pears 3. plums 4. cherries 5. grapes 6. melons",
])
def test_sensible_answers_are_not_degenerate(text: str) -> None:
    assert degenerate(text) is None


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("!" * 32, "not text"),
    ("\ufffd\ufffd abc", "not text"),
    ("abc \x00\x01 def", "not text"),
    (" ĠĠĠ ### $$$ %%% @@@ ^^^ ~~~", "not text"),
    (" Paris is the capital of France. Paris is the capital of France. Paris is the capital"
     " of France. Paris is the capital of France.", "repeats"),
    (" the the the the the the the the the the", "repeats 'the' 10 times"),
    (" Paris. Paris, France. Paris, France. Paris, France. Paris, France. Paris, France.",
     "repeats"),
])
def test_degenerate_answers_say_why(text: str, why: str) -> None:
    found = degenerate(text)
    assert found is not None and found.startswith(why), found


def test_a_slot_differing_from_the_majority_fails_with_its_text() -> None:
    garbage = {**GOOD, "capital": " Lyon is a city in the south of France near the Alps."}
    probes = [probe("lab01", "slot0"), probe("lab01", "slot1"), probe("lab02", "slot0"),
              probe("lab02", "slot1", garbage)]
    judgement = judge(probes)
    assert [(s.host, s.slot) for s in judgement.failed] == [("lab02", "slot1")]
    failed = judgement.failed[0]
    assert len(failed.divergences) == 1
    divergence = failed.divergences[0]
    assert divergence.prompt_id == "capital"
    assert divergence.why == "differs from the fleet's majority"
    assert divergence.got == "Lyon is a city in the south of France near the Alps."
    assert divergence.majority is not None and divergence.majority.startswith("Paris.")
    assert failed.reason.startswith("1 of 4 answers wrong; capital: differs")
    assert "Lyon is a city" in failed.reason and "(fleet: 'Paris." in failed.reason
    assert judgement.to_dict()["passed"] == 3 and judgement.to_dict()["probed"] == 4


def test_garbage_fails_on_every_prompt_even_without_a_majority() -> None:
    garbage = dict.fromkeys(GOOD, "!" * 32)
    judgement = judge([probe("lab01", "slot0", garbage)])  # one slot: no one to compare with
    failed = judgement.failed
    assert len(failed) == 1 and len(failed[0].divergences) == 4
    assert all(d.why.startswith("not text") for d in failed[0].divergences)
    assert failed[0].divergences[0].got == "!" * 32


def test_no_majority_fails_nobody_but_is_a_finding() -> None:
    other = {**GOOD, "arithmetic": " 41"}
    judgement = judge([probe("lab01", "slot0"), probe("lab02", "slot0", other)])
    assert judgement.failed == ()
    assert judgement.no_majority == ({"model": MODEL, "dtype": "float16", "tp": 8,
                                      "prompt_id": "arithmetic", "answers": 2,
                                      "distinct": 2},)


def test_slots_are_compared_within_their_model_dtype_and_tp_only() -> None:
    fp8 = {**GOOD, "capital": " Paris, the capital and largest city of France."}
    probes = [probe("lab01", "slot0"), probe("lab02", "slot0"),
              probe("lab03", "slot0", fp8, dtype="float8"),
              probe("lab04", "slot0", fp8, tp=1), probe("lab05", "slot0", fp8, tp=1)]
    judgement = judge(probes)
    assert judgement.failed == ()
    assert judgement.groups == 3


def test_whitespace_does_not_make_a_difference() -> None:
    spaced = {**GOOD, "capital": GOOD["capital"].replace(" ", "  ") + "\n"}
    judgement = judge([probe("a", "slot0"), probe("b", "slot0"), probe("c", "slot0", spaced)])
    assert judgement.failed == ()


def test_expected_answers_must_be_contained_case_ignored() -> None:
    expected = {"Llama-3.1-8B-Instruct": {"capital": "paris", "arithmetic": "42"}}
    assert judge([probe("a", "slot0")], expected).failed == ()
    wrong = {**GOOD, "arithmetic": " 41"}
    judgement = judge([probe("a", "slot0", wrong)], {MODEL: {"arithmetic": "42"}})
    (failed,) = judgement.failed
    assert failed.divergences[0].why == "does not contain the expected '42'"
    assert failed.divergences[0].expected == "42"


def test_expected_answers_of_a_prompt_the_probe_did_not_ask_are_reported() -> None:
    judgement = judge([probe("a", "slot0")], {MODEL: {"capitol": "Paris"}})
    assert judgement.failed == ()
    assert judgement.unknown_expected == (f"{MODEL}: capitol",)


def test_a_probe_that_could_not_answer_fails_its_slot() -> None:
    broken = probe("a", "slot0", {}, error="the engine exited with code 1 — see "
                                            "correctness.log")
    (failed,) = judge([broken, probe("b", "slot0")]).failed
    assert failed.reason == "no answers: the engine exited with code 1 — see correctness.log"


def test_a_missing_answer_fails_its_slot() -> None:
    partial = {k: v for k, v in GOOD.items() if k != "translation"}
    (failed,) = judge([probe("a", "slot0"), probe("b", "slot0", partial)]).failed
    assert failed.divergences[0].prompt_id == "translation"
    assert failed.divergences[0].why == "no answer"


def test_long_answers_are_quoted_short() -> None:
    long = {**GOOD, "capital": " " + " ".join(f"word{i}" for i in range(100))}
    (failed,) = judge([probe("a", "slot0"), probe("b", "slot0"),
                       probe("c", "slot0", long)]).failed
    assert len(failed.divergences[0].got) == 160 and failed.divergences[0].got.endswith("…")


def test_probe_file_schema() -> None:
    data = {"model": MODEL, "dtype": "float16", "tp": 8, "method": "serve", "error": None,
            "answers": [{"id": "capital", "prompt": "The capital of France is",
                         "text": " Paris."}, {"id": "x", "prompt": "p", "text": None}]}
    found = probe_from_dict(data, "lab01", "slot3")
    assert found.group == (MODEL, "float16", 8)
    assert found.answers == (Answer("capital", "The capital of France is", " Paris."),
                             Answer("x", "p", ""))
    assert found.method == "serve" and found.error == ""
    assert probe_from_dict([1], "h", "s").error == "correctness.json is not a JSON object"


# --- expected answers file -----------------------------------------------------------------------


def test_expected_answers_file(tmp_path: Path) -> None:
    path = tmp_path / "expected.yml"
    path.write_text(f"{MODEL}:\n  capital: Paris\n  arithmetic: 42\n")
    assert load_expected(path) == {MODEL: {"capital": "Paris", "arithmetic": "42"}}
    path.write_text("")
    assert load_expected(path) == {}


@pytest.mark.parametrize(("text", "message"), [
    ("- capital: Paris\n", "expected a mapping of model ids"),
    (f"{MODEL}: Paris\n", "needs a mapping of prompt ids"),
    (f"{MODEL}:\n  capital: ''\n", "needs a non-empty text"),
    (f"{MODEL}:\n  capital: [Paris]\n", "needs a non-empty text"),
    (f"{MODEL}: [\n", "not valid YAML"),
])
def test_bad_expected_answers_are_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "expected.yml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message) as error:
        load_expected(path)
    assert str(path) in str(error.value)


def test_a_missing_expected_answers_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read the expected answers"):
        load_expected(tmp_path / "nope.yml")


# --- the run's manifest --------------------------------------------------------------------------


def _write_probe(hosts_dir: Path, host: str, slot: str, answers: dict[str, str]) -> None:
    folder = hosts_dir / host / slot
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "correctness.json").write_text(json.dumps({
        "model": MODEL, "dtype": "float16", "tp": 8, "method": "offline", "error": None,
        "answers": [{"id": k, "prompt": f"prompt {k}", "text": v} for k, v in answers.items()],
    }))


def _manifest(hosts: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {"hosts": {
        host: {"status": "ok" if all(s == "ok" for s in slots.values()) else "failed:benchmark",
               "reason": "", "steps": {"benchmark": {"status": "ok"}},
               "slots": {name: {"status": status, "summary": ""}
                         for name, status in slots.items()}}
        for host, slots in hosts.items()}}


def test_record_fails_the_garbage_slot_and_its_host(tmp_path: Path) -> None:
    manifest = _manifest({"lab01": {"slot0": "ok", "slot1": "ok"},
                          "lab02": {"slot0": "ok", "slot1": "ok"},
                          "lab03": {"slot0": "failed:no-results"}})
    for host in ("lab01", "lab02"):
        for slot in ("slot0", "slot1"):
            _write_probe(tmp_path, host, slot, GOOD)
    _write_probe(tmp_path, "lab02", "slot1", dict.fromkeys(GOOD, "!" * 32))
    findings = record(manifest, tmp_path)
    hosts = manifest["hosts"]
    assert hosts["lab01"]["status"] == "ok"
    assert hosts["lab02"]["status"] == "failed:benchmark"
    assert hosts["lab02"]["steps"]["benchmark"]["status"] == "failed"
    slot = hosts["lab02"]["slots"]["slot1"]
    assert slot["status"] == FAILED
    assert slot["summary"].startswith("4 of 4 answers wrong; capital: not text")
    assert "'!!!!!!!!" in slot["summary"]
    assert hosts["lab02"]["reason"].startswith("1 of 2 slots not ok: slot1 failed:correctness")
    # A slot whose benchmark failed is not judged (its numbers count for nothing anyway).
    assert hosts["lab03"]["slots"]["slot0"]["status"] == "failed:no-results"
    assert manifest["correctness"] == findings
    assert findings["probed"] == 4 and findings["passed"] == 3
    (failed,) = findings["failed"]
    assert (failed["host"], failed["slot"]) == ("lab02", "slot1")
    assert failed["divergences"][0]["got"] == "!" * 32


def test_record_fails_a_judged_slot_without_a_probe_file(tmp_path: Path) -> None:
    manifest = _manifest({"lab01": {"slot0": "ok"}, "lab02": {"slot0": "ok"}})
    _write_probe(tmp_path, "lab01", "slot0", GOOD)
    record(manifest, tmp_path)
    slot = manifest["hosts"]["lab02"]["slots"]["slot0"]
    assert slot["status"] == FAILED
    assert slot["summary"].startswith("no answers: no probe result")
    assert manifest["hosts"]["lab01"]["status"] == "ok"


def test_record_keeps_an_earlier_attempts_verdict(tmp_path: Path) -> None:
    manifest = _manifest({"lab01": {"slot0": "ok", "slot1": FAILED}})
    manifest["hosts"]["lab01"]["slots"]["slot1"]["summary"] = "earlier reason"
    _write_probe(tmp_path, "lab01", "slot0", GOOD)
    _write_probe(tmp_path, "lab01", "slot1", GOOD)
    record(manifest, tmp_path)
    assert manifest["hosts"]["lab01"]["slots"]["slot1"] == {"status": FAILED,
                                                           "summary": "earlier reason"}


def test_run_refuses_a_bad_expected_answers_file_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fleetbench.cli import main

    bad = tmp_path / "expected.yml"
    bad.write_text("- capital: Paris\n")
    code = main(["run", "-i", str(tmp_path / "inventory.yml"), "--model", MODEL, "--gpus", "8",
                 "--expected-answers", str(bad), "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a mapping of model ids" in err and str(bad) in err
    assert not (tmp_path / "runs").exists()
