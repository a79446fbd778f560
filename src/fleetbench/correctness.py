"""Does a slot's model answer correctly? The controller's half of the correctness probe.

Throughput is worth nothing when the model answers garbage (vLLM has been reported to
return garbage on partitioned MI300X while the benchmark still printed its numbers). So
each slot, after its benchmark, answers a few fixed prompts greedily (temperature 0, a
fixed seed) in the same container, image and model, and writes ``correctness.json`` into
its folder (``roles/benchmark/files/correctness-probe.py``). Here, once every host is
collected, the answers are compared across the fleet's slots that ran the same model,
dtype and tensor-parallel size:

- an answer that is empty or degenerate (a loop of the same words, or not text) fails
  its slot, whatever the others said;
- an answer that differs from the majority answer of its group (more than half of the
  group's usable answers agree on it) fails its slot;
- with an expected-answers file, an answer that does not contain its expected text
  fails its slot.

A failed slot ends ``failed:correctness`` (its numbers do not count), with the diverging
text in its summary and in the run's ``correctness`` findings. Pure functions; the run
calls :func:`record`.

Expected answers (``--expected-answers FILE``), per model, per prompt id of the probe
(``benchmark_correctness_prompts``), a text the answer must contain (case ignored)::

    meta-llama/Llama-3.1-8B-Instruct:
      capital: Paris
      arithmetic: "42"
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetbench.errors import BadInput

#: The file each slot's probe writes into its folder.
PROBE_FILE = "correctness.json"
FAILED = "failed:correctness"
#: Slot verdicts the probe's judgement applies to: only a slot whose numbers would count.
JUDGED = frozenset({"ok", FAILED})
#: How much of an answer a finding quotes.
QUOTE_CHARS = 160

# Degenerate output. A loop: a run of at least _LOOP_REPEATS copies of the same words at
# the end of the answer, covering at least _LOOP_SHARE of it. Not text: fewer than
# _TEXT_SHARE of the characters that are not spaces are letters or digits (any script).
_LOOP_REPEATS = 4
_LOOP_SHARE = 0.6
_MIN_LOOP_TOKENS = 8
_TEXT_SHARE = 0.5
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Answer:
    """One prompt's answer by one slot."""

    prompt_id: str
    prompt: str
    text: str


@dataclass(frozen=True)
class Probe:
    """What one slot's probe wrote: its configuration and answers, or why it has none."""

    host: str
    slot: str
    model: str
    dtype: str
    tp: int
    answers: tuple[Answer, ...] = ()
    method: str = ""
    error: str = ""

    @property
    def group(self) -> tuple[str, str, int]:
        """The slots compared with each other: same model, dtype and tensor-parallel size."""
        return (self.model, self.dtype, self.tp)


@dataclass(frozen=True)
class Divergence:
    """One answer that failed its slot, and what the fleet (or the expected text) said."""

    prompt_id: str
    prompt: str
    got: str
    why: str
    majority: str | None = None
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the manifest and the report."""
        return {"prompt_id": self.prompt_id, "prompt": self.prompt, "got": self.got,
                "why": self.why, "majority": self.majority, "expected": self.expected}


@dataclass(frozen=True)
class SlotJudgement:
    """A slot's correctness verdict."""

    host: str
    slot: str
    passed: bool
    reason: str = ""
    divergences: tuple[Divergence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the manifest and the report."""
        return {"host": self.host, "slot": self.slot, "reason": self.reason,
                "divergences": [d.to_dict() for d in self.divergences]}


@dataclass(frozen=True)
class Judgement:
    """The fleet's correctness verdict: every judged slot, and prompts without a majority."""

    slots: tuple[SlotJudgement, ...]
    #: Prompts of a group whose usable answers have no majority (no slot is failed then:
    #: which one is wrong cannot be told), as findings.
    no_majority: tuple[dict[str, Any], ...] = ()
    #: Expected answers naming a prompt id the probe did not ask.
    unknown_expected: tuple[str, ...] = ()
    groups: int = 0

    @property
    def failed(self) -> tuple[SlotJudgement, ...]:
        """The slots that failed the probe."""
        return tuple(s for s in self.slots if not s.passed)

    def to_dict(self) -> dict[str, Any]:
        """The run's ``correctness`` findings (manifest, ``summary.json``)."""
        return {
            "probed": len(self.slots),
            "passed": sum(1 for s in self.slots if s.passed),
            "groups": self.groups,
            "failed": [s.to_dict() for s in self.failed],
            "no_majority": list(self.no_majority),
            "unknown_expected": list(self.unknown_expected),
        }


# --- degenerate answers -----------------------------------------------------------------------


def _normalised(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def degenerate(text: str) -> str | None:
    """Why ``text`` is no answer at all (``empty``, ``not text …``, ``repeats …``), or None.

    Short, sensible answers pass ("4", "Paris."); what fails is what a broken kernel or a
    garbled weight load produces: nothing, a stream of symbols or replacement characters,
    or one phrase over and over.
    """
    clean = _normalised(text)
    if not clean:
        return "empty"
    for char in clean:
        category = unicodedata.category(char)
        if char == "\ufffd" or category in {"Cc", "Cs", "Co", "Cn"}:
            return f"not text (holds {char!r})"
    visible = clean.replace(" ", "")
    texty = sum(1 for char in visible if char.isalnum())
    if texty < _TEXT_SHARE * len(visible):
        return f"not text (only {texty} of {len(visible)} characters are letters or digits)"
    tokens = _TOKEN.findall(clean.lower())
    if len(tokens) >= _MIN_LOOP_TOKENS:
        loop = _trailing_loop(tokens)
        if loop is not None:
            period, repeats = loop
            phrase = " ".join(tokens[-period:])
            return f"repeats {phrase!r} {repeats} times"
    return None


def _trailing_loop(tokens: Sequence[str]) -> tuple[int, int] | None:
    """(period, repeats) of the longest-covering loop at the end of ``tokens``, if any
    covers enough of them."""
    for period in range(1, len(tokens) // _LOOP_REPEATS + 1):
        unit = list(tokens[-period:])
        repeats, end = 1, len(tokens) - period
        while end - period >= 0 and list(tokens[end - period:end]) == unit:
            repeats += 1
            end -= period
        # A partial copy of the unit before the loop counts towards its cover.
        partial = 0
        while (partial < period and end - partial - 1 >= 0
               and tokens[end - partial - 1] == unit[period - partial - 1]):
            partial += 1
        if repeats >= _LOOP_REPEATS and (repeats * period + partial) >= _LOOP_SHARE * len(tokens):
            return period, repeats
    return None


# --- reading the probes -----------------------------------------------------------------------


def read_probe(path: Path, host: str, slot: str) -> Probe:
    """The probe file of one slot; a missing or damaged file is a probe with an error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Probe(host, slot, "", "", 0,
                     error="no probe result (the slot ended before its probe wrote "
                           f"{PROBE_FILE})")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Probe(host, slot, "", "", 0, error=f"{PROBE_FILE} is unreadable ({exc})")
    return probe_from_dict(data, host, slot)


def probe_from_dict(data: object, host: str, slot: str) -> Probe:
    """A probe from the JSON the slot wrote (schema of correctness-probe.py)."""
    if not isinstance(data, Mapping):
        return Probe(host, slot, "", "", 0, error=f"{PROBE_FILE} is not a JSON object")
    answers = []
    for item in data.get("answers") or ():
        if isinstance(item, Mapping):
            text = item.get("text")
            answers.append(Answer(prompt_id=str(item.get("id") or ""),
                                  prompt=str(item.get("prompt") or ""),
                                  text=text if isinstance(text, str) else ""))
    tp = data.get("tp")
    return Probe(host=host, slot=slot, model=str(data.get("model") or ""),
                 dtype=str(data.get("dtype") or ""), tp=tp if isinstance(tp, int) else 0,
                 answers=tuple(answers), method=str(data.get("method") or ""),
                 error=str(data.get("error") or ""))


# --- expected answers -------------------------------------------------------------------------


def load_expected(path: Path) -> dict[str, dict[str, str]]:
    """An expected-answers YAML file (model id → prompt id → text); BadInput when wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the expected answers ({exc}) — check the path") \
            from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({exc}) — fix the expected answers") from None
    if data is None:
        return {}
    example = "e.g. `meta-llama/Llama-3.1-8B-Instruct: {capital: Paris}`"
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping of model ids to answers — {example}")
    expected: dict[str, dict[str, str]] = {}
    for model, answers in data.items():
        if not isinstance(model, str) or not isinstance(answers, dict) or not answers:
            raise BadInput(f"{path}: {model!r} needs a mapping of prompt ids to the text "
                           f"its answer must contain — {example}")
        texts: dict[str, str] = {}
        for prompt_id, text in answers.items():
            if (not isinstance(prompt_id, str) or isinstance(text, dict | list | bool)
                    or text is None or not str(text).strip()):
                raise BadInput(f"{path}: {model}: {prompt_id!r} needs a non-empty text its "
                               f"answer must contain — {example}")
            texts[prompt_id] = str(text)
        expected[model] = texts
    return expected


def _expected_for(expected: Mapping[str, Mapping[str, str]], model: str
                  ) -> Mapping[str, str]:
    """The expected answers of ``model``: by its id, else by its name without ``org/``."""
    if model in expected:
        return expected[model]
    name = model.rstrip("/").rsplit("/", 1)[-1]
    return next((answers for key, answers in expected.items()
                 if key.rstrip("/").rsplit("/", 1)[-1] == name), {})


# --- the verdict ------------------------------------------------------------------------------


def quote(text: str) -> str:
    """An answer as a finding quotes it: one line, at most :data:`QUOTE_CHARS` characters."""
    one_line = _normalised(text)
    return one_line if len(one_line) <= QUOTE_CHARS else one_line[:QUOTE_CHARS - 1] + "…"


def judge(probes: Sequence[Probe],
          expected: Mapping[str, Mapping[str, str]] | None = None) -> Judgement:
    """Judge every slot's answers against its group's majority (and the expected texts)."""
    expected = expected or {}
    groups: dict[tuple[str, str, int], list[Probe]] = {}
    for probe in probes:
        groups.setdefault(probe.group, []).append(probe)
    verdicts: dict[tuple[str, str], SlotJudgement] = {}
    no_majority: list[dict[str, Any]] = []
    asked: set[str] = set()
    for (model, dtype, tp), members in groups.items():
        majority: dict[str, str | None] = {}
        prompt_ids = list(dict.fromkeys(a.prompt_id for p in members for a in p.answers))
        asked.update(prompt_ids)
        for prompt_id in prompt_ids:
            usable = [_normalised(a.text) for p in members for a in p.answers
                      if a.prompt_id == prompt_id and degenerate(a.text) is None]
            top = Counter(usable).most_common(2)
            if top and top[0][1] * 2 > len(usable):
                majority[prompt_id] = top[0][0]
            else:
                majority[prompt_id] = None
                if len(usable) > 1:
                    no_majority.append({"model": model, "dtype": dtype, "tp": tp,
                                        "prompt_id": prompt_id, "answers": len(usable),
                                        "distinct": len(set(usable))})
        wanted = _expected_for(expected, model)
        for probe in members:
            verdicts[(probe.host, probe.slot)] = _judge_slot(probe, prompt_ids, majority,
                                                             wanted)
    unknown = sorted({f"{model}: {prompt_id}" for model, answers in expected.items()
                      for prompt_id in answers if asked and prompt_id not in asked})
    return Judgement(slots=tuple(verdicts[(p.host, p.slot)] for p in probes),
                     no_majority=tuple(no_majority), unknown_expected=tuple(unknown),
                     groups=len(groups))


def _judge_slot(probe: Probe, prompt_ids: Sequence[str], majority: Mapping[str, str | None],
                wanted: Mapping[str, str]) -> SlotJudgement:
    if probe.error and not probe.answers:
        return SlotJudgement(probe.host, probe.slot, False, f"no answers: {probe.error}")
    answers = {a.prompt_id: a for a in probe.answers}
    found: list[Divergence] = []
    for prompt_id in prompt_ids:
        answer = answers.get(prompt_id)
        if answer is None:
            found.append(Divergence(prompt_id, "", "", "no answer"))
            continue
        text = _normalised(answer.text)
        agreed = majority.get(prompt_id)
        why = degenerate(answer.text)
        if why is None and agreed is not None and text != agreed:
            why = "differs from the fleet's majority"
        need = wanted.get(prompt_id)
        if why is None and need is not None and need.lower() not in text.lower():
            why = f"does not contain the expected {need!r}"
        if why is not None:
            found.append(Divergence(prompt_id, answer.prompt, quote(answer.text), why,
                                    majority=None if agreed is None else quote(agreed),
                                    expected=need))
    if not found:
        return SlotJudgement(probe.host, probe.slot, True)
    first = found[0]
    reason = (f"{len(found)} of {len(prompt_ids)} answers wrong; {first.prompt_id}: "
              f"{first.why}: {first.got!r}"
              + (f" (fleet: {first.majority!r})" if first.majority is not None else ""))
    return SlotJudgement(probe.host, probe.slot, False, reason, tuple(found))


# --- the run's manifest -----------------------------------------------------------------------


def probes_of_run(hosts: Mapping[str, Mapping[str, Any]], hosts_dir: Path) -> list[Probe]:
    """The probe of every slot whose verdict the probe decides (``ok`` or already failed
    it), read from the run directory's ``hosts/<host>/<slot>/correctness.json``."""
    found = []
    for host, entry in hosts.items():
        for slot, state in (entry.get("slots") or {}).items():
            if state.get("status") in JUDGED:
                found.append(read_probe(hosts_dir / host / slot / PROBE_FILE, host, slot))
    return found


def record(manifest: MutableMapping[str, Any], hosts_dir: Path,
           expected: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """Judge the run's probes and write the verdict into ``manifest``: failed slots become
    ``failed:correctness`` (summary: why), their hosts ``failed:benchmark`` as for any
    failed slot; returns (and stores as ``manifest["correctness"]``) the findings.

    A slot that failed the probe in an earlier attempt of the run stays failed (its
    answers still count towards the majority); only ``--rerun-failed`` runs it again.
    """
    from fleetbench.slot_verdict import failed_slots_reason

    hosts: dict[str, Any] = manifest["hosts"]
    judgement = judge(probes_of_run(hosts, hosts_dir), expected)
    changed: set[str] = set()
    for verdict in judgement.failed:
        slot = hosts[verdict.host]["slots"][verdict.slot]
        if slot.get("status") != FAILED:
            slot["status"], slot["summary"] = FAILED, verdict.reason
            changed.add(verdict.host)
    for host in changed:
        entry = hosts[host]
        if entry.get("status") in {"ok", "failed:benchmark"}:
            entry["status"] = "failed:benchmark"
            entry["reason"] = failed_slots_reason(entry["slots"]) or ""
            step = (entry.get("steps") or {}).get("benchmark")
            if isinstance(step, dict):
                step["status"] = "failed"
    findings = judgement.to_dict()
    manifest["correctness"] = findings
    return findings
