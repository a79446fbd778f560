"""``fleetbench run``: pull, start, benchmark, collect on every host of a fleet."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleetbench import diskplan
from fleetbench import plan as planning
from fleetbench import run as runs
from fleetbench.commands import user_path
from fleetbench.correctness import load_expected
from fleetbench.progress import FleetProgress
from fleetbench.reports.build import DEFAULT, build_report
from fleetbench.reports.thresholds import load_thresholds
from fleetbench.secrets import load_hf_token


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` sub-command."""
    parser = sub.add_parser(
        "run",
        help="run the vLLM benchmark on every host and collect the reports",
        description="Preflight (partition verdict), image pull, MAD checkout, one container "
        "per GPU slot running vllm_benchmark_report.sh, collection into one run directory. "
        "Exit 0 when every host ends ok, 1 otherwise, 2 on bad input (nothing started).",
    )
    parser.add_argument("-i", "--inventory", type=user_path, help="Ansible inventory")
    parser.add_argument("--model", help="Hugging Face id, e.g. meta-llama/Llama-3.1-8B-Instruct")
    parser.add_argument("--gpus", type=int, help="GPUs per benchmark instance (-g, TP size)")
    parser.add_argument("--dtype", default="float16", help="float16 | bfloat16 | float8")
    parser.add_argument("--scenario", default="all",
                        help="latency | throughput | serving | all (default all)")
    parser.add_argument("--slots", default="auto",
                        help="instances per host: auto (use every GPU) or a number")
    parser.add_argument("--image", help=f"image reference (default {planning.DEFAULT_IMAGE}, "
                        "or the inventory's fleetbench_image)")
    parser.add_argument("--mad-repo", help="MAD git URL (a mirror or file:// for offline fleets)")
    parser.add_argument("--mad-ref", help="MAD branch, tag or commit to pin")
    parser.add_argument("--mad-sync", type=user_path, metavar="DIR",
                        help="offline fleets: send a snapshot of this controller-side MAD "
                        "checkout (at --mad-ref) to every host instead of cloning")
    parser.add_argument("--model-from", type=user_path, metavar="DIR",
                        help="offline fleets: send the model's snapshot from this "
                        "controller-side Hugging Face cache (HF_HUB_CACHE layout) to every "
                        "host's cache instead of downloading it there")
    parser.add_argument("--image-from-controller", action="store_true",
                        help="offline fleets: send the image from this controller's Docker "
                        "engine to the hosts that lack it (throttled like pulls) instead of "
                        "pulling it from a registry")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for every slot container (repeatable; over the "
                        "inventory's fleetbench_container_env; secrets are refused)")
    parser.add_argument("--runs-dir", type=user_path, default="runs",
                        help="where run directories go (default ./runs)")
    parser.add_argument("--limit", help="host pattern, as ansible-playbook --limit")
    parser.add_argument("--timeout", default="6h",
                        help="how long one slot's benchmark may run (default 6h)")
    parser.add_argument("--serving-start-timeout", metavar="DURATION",
                        help="how long a serving slot's vLLM server may take to come up "
                        "before the slot fails failed:server-start, apart from --timeout "
                        "(default 20m, or the inventory's fleetbench_serving_start_timeout)")
    parser.add_argument("--hf-token-file", type=user_path,
                        help="file holding the Hugging Face token (default: $HF_TOKEN)")
    parser.add_argument("--resume", type=user_path, metavar="RUN_DIR",
                        help="finish a run (after a crash, Ctrl-C or a failure): wait for "
                        "slots still running, collect those that ended, start those that "
                        "never ran; nothing runs twice")
    parser.add_argument("--rerun-failed", "--retry-failed", action="store_true",
                        help="with --resume: also start the slots whose verdict failed again")
    parser.add_argument("--reconnect-window", metavar="DURATION",
                        help="how long a host may be out of reach while its slots run before "
                        "it ends unreachable (default 30m, or the inventory's "
                        "fleetbench_reconnect_window)")
    parser.add_argument("--no-correctness", action="store_true",
                        help="skip the correctness probe (each slot answering a few fixed "
                        "prompts greedily after its benchmark, compared across the fleet)")
    parser.add_argument("--expected-answers", type=user_path, metavar="FILE",
                        help="YAML of the text each probe answer must contain, per model "
                        "and prompt id (e.g. `meta-llama/Llama-3.1-8B-Instruct: {capital: "
                        "Paris}`)")
    parser.add_argument("--thresholds", type=user_path,
                        help="thresholds YAML for the report's gate (see report build)")
    parser.add_argument("--baseline", type=user_path, metavar="RUN_DIR",
                        help="compare with this run (default: the previous comparable run)")
    parser.add_argument("--history", type=user_path, metavar="DB",
                        help="history database (default $FLEETBENCH_HISTORY or "
                        "~/.local/state/fleetbench/history.sqlite)")
    parser.add_argument("--prometheus", type=user_path, metavar="FILE",
                        help="also write node_exporter textfile metrics to FILE")
    parser.add_argument("--no-report", action="store_true",
                        help="collect only; build the report later with report build")
    parser.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Validate, run, print the run directory (or JSON); 0 when every host is ok."""
    token = load_hf_token(args.hf_token_file, getattr(args, "environment_secrets", None))
    if args.resume is not None:
        request = _resume_request(args, token)
    else:
        _require(args, "inventory", "-i/--inventory")
        _require(args, "model", "--model")
        _require(args, "gpus", "--gpus")
        request = runs.prepare(
            args.inventory, args.model, args.gpus, args.dtype, args.scenario,
            slots=args.slots, image=args.image, mad_repo=args.mad_repo, mad_ref=args.mad_ref,
            mad_sync=args.mad_sync, model_from=args.model_from,
            container_env=planning.parse_env_assignments(args.env),
            runs_dir=args.runs_dir, limit=args.limit,
            timeout_s=planning.parse_duration(args.timeout), token=token,
            reconnect_window=args.reconnect_window,
            image_from_controller=args.image_from_controller,
            serving_start_timeout=args.serving_start_timeout,
            probe=not args.no_correctness,
            expected_answers=load_expected(args.expected_answers) if args.expected_answers
            else None,
        )
    if args.rerun_failed and args.resume is None:
        from fleetbench.errors import BadInput

        raise BadInput("--rerun-failed goes with --resume RUN_DIR (a new run starts every slot)")
    request = dataclasses.replace(request, rerun_failed=bool(args.rerun_failed))
    if args.thresholds is not None:
        load_thresholds(args.thresholds)  # a bad file is bad input: fail before any host
    console = Console(stderr=True)
    # The plan's disk need (the registry asked for the image's size), before any host.
    request = runs.with_disk_plan(request)
    for need in diskplan.summary(request.disk_needs)["needs"]:
        console.print(f"disk: {escape(diskplan.describe(need))} ({len(need['hosts'])} hosts)")
    with FleetProgress(len(request.fleet.hosts), "run", console) as progress:
        run_dir, manifest = runs.execute(
            request, on_step=progress.step, on_host=progress.host_done,
            on_watch=progress.watching,
        )
    gate_failed = False
    summary = _summary(run_dir, manifest)
    if not args.no_report:
        report = build_report(run_dir, baseline=args.baseline, thresholds=args.thresholds,
                              history_db=args.history if args.history else DEFAULT,
                              prometheus=args.prometheus)
        gate_failed = report.gate_failed
        summary["report"] = {"gate_failed": gate_failed,
                             **{k: str(v) for k, v in report.outputs.items()}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        Console().print(_table(manifest))
        print(f"run directory: {run_dir}")
        if "report" in summary:
            verdict = "FAILED" if gate_failed else "passed"
            print(f"report: {run_dir / 'report' / 'index.html'} (gate {verdict})")
    return 0 if manifest["summary"]["ok"] and not gate_failed else 1


def _require(args: argparse.Namespace, name: str, flag: str) -> None:
    if getattr(args, name) in (None, ""):
        from fleetbench.errors import BadInput

        raise BadInput(f"{flag} is required (or --resume RUN_DIR to finish an earlier run)")


def _resume_request(args: argparse.Namespace, token: Any) -> runs.RunRequest:
    manifest = runs.read_manifest(args.resume)
    plan = manifest["plan"]
    inventory = args.inventory or Path(manifest["inventory"])
    request = runs.prepare(
        inventory, plan["model"], plan["gpus"], plan["dtype"], plan["scenario"],
        slots=str(plan["slots"]), image=plan["overrides"].get("image"),
        mad_repo=plan["overrides"].get("mad_repo"), mad_ref=plan["overrides"].get("mad_ref"),
        mad_sync=Path(plan["overrides"]["mad_sync"]) if plan["overrides"].get("mad_sync")
        else None,
        model_from=Path(plan["overrides"]["model_from"])
        if plan["overrides"].get("model_from") else None,
        container_env=plan.get("container_env") or {},
        runs_dir=args.resume.parent, limit=plan.get("limit"), timeout_s=plan["timeout_s"],
        token=token, reconnect_window=args.reconnect_window,
        image_from_controller=bool(plan.get("image_from_controller")),
        serving_start_timeout=args.serving_start_timeout,
        probe=bool(plan.get("correctness", True)),
        expected_answers=plan.get("expected_answers") or None,
    )
    return dataclasses.replace(request, resume=args.resume)


def _summary(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "run_id": manifest["run_id"],
        "ok": manifest["summary"]["ok"],
        "statuses": manifest["summary"]["statuses"],
        "image_drift": manifest["image"]["drift"],
        "hosts": {h: {"status": e["status"], "reason": e.get("reason", ""),
                      "slots": {k: s["status"] for k, s in e.get("slots", {}).items()}}
                  for h, e in manifest["hosts"].items()},
    }


def _table(manifest: dict[str, Any]) -> Table:
    table = Table(title=f"fleetbench run {manifest['run_id']}")
    for column in ("host", "status", "slots ok", "image digest", "reason"):
        table.add_column(column, overflow="fold")
    for host, entry in manifest["hosts"].items():
        slots = entry.get("slots", {})
        good = sum(1 for s in slots.values() if s.get("status") == "ok")
        colour = "green" if entry["status"] == "ok" else "red"
        digest = (entry.get("image_digest") or "")[:19]
        reason = (entry.get("reason") or "").splitlines()[0] if entry.get("reason") else ""
        table.add_row(escape(host), f"[{colour}]{entry['status']}[/]", f"{good}/{len(slots)}",
                      digest, escape(reason))  # text ("[192.0.2.15]:2222"), not markup
    return table
