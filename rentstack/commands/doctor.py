"""`rentstack doctor [LOGFILE | -]`: explain a vLLM start from its log and print the fixes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rentstack.doctor import PlannerInputs, iter_lines, lookup_calibration, save_calibration
from rentstack.doctor.diagnose import judge, read_facts
from rentstack.doctor.diagnosis import Diagnosis
from rentstack.doctor.parse import LogFacts
from rentstack.doctor.reader import strip_controls
from rentstack.errors import RentstackError
from rentstack.safe import check_text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="explain a vLLM server log: why the start failed and which flags fix it",
        description="Read a vLLM server log (a file, or - for stdin), say whether the start succeeded, "
                    "why it failed and in which phase, and propose launch changes with their cost.",
    )
    p.add_argument("logfile", nargs="?", default="-", metavar="LOGFILE",
                   help="the server's log (docker logs ... 2>&1 > FILE); - or nothing reads stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of prose")
    p.add_argument("--model-config", metavar="PATH",
                   help="the model's config.json (or its directory): fixes get the planner's predicted result")
    p.add_argument("--gpu-mem-gib", type=float, metavar="F",
                   help="total memory of one card in GiB (vLLM's log rarely prints it)")
    p.add_argument("--gpus", type=int, metavar="N", help="cards on the host (for tensor-parallel fixes)")
    p.add_argument("--card", default="", metavar="NAME",
                   help="card model, e.g. 'RTX 4090' (the calibration key; the planner's per-card defaults)")
    p.add_argument("--save-calibration", action="store_true",
                   help="after a good start, store its measured figures for the next plan of this "
                        "card, vLLM version and model ($RENTSTACK_CALIBRATION or ~/.cache/rentstack/calibration.json)")
    p.set_defaults(func=run)


def _check_positive(name: str, value: float | int | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):   # nan > 0 is False, inf is not a size
        raise RentstackError(f"{name} must be > 0, got {value}: give a positive number")


def run(args: argparse.Namespace) -> int:
    _check_positive("--gpu-mem-gib", args.gpu_mem_gib)
    _check_positive("--gpus", args.gpus)
    check_text("--card", args.card)   # a calibration key and printed back: no control characters
    if args.model_config:
        check_model_config(args.model_config)
    inputs = PlannerInputs(model_config=args.model_config, gpu_mem_gib=args.gpu_mem_gib, gpus=args.gpus,
                           card=args.card)
    facts = _read(args.logfile)
    diagnosis = judge(facts, inputs)

    # Judge again with an earlier measurement of the same combination, when one exists: a
    # failed start often lacks the figure its fix needs (e.g. the CUDA-graph size).
    version, model = diagnosis.figures.get("vllm_version"), diagnosis.figures.get("model")
    if args.card and version and model and diagnosis.status == "failed":
        record = lookup_calibration(args.card, version, model)
        if record:
            inputs.calibration = record.get("figures")
            diagnosis = judge(facts, inputs)

    saved = None
    if args.save_calibration:
        saved = _save(diagnosis, args.card, inputs)

    if args.json:
        out = diagnosis.to_dict()
        if saved:
            out["calibration_saved_to"] = str(saved)
        print(json.dumps(out, indent=2, default=str))
    else:
        print(render_text(diagnosis))
        if saved:
            print(f"\nMeasured figures saved to {saved}.")
    return 0 if diagnosis.status == "ok" else 1


def check_model_config(source: str) -> None:
    """Refuse a --model-config the planner cannot read, in one line naming the file and the field.

    The doctor only uses the config for predictions and treats a planner refusal there as "cannot
    say"; without this check a broken file would silently drop every prediction."""
    from rentstack.plan import load_arch

    path = Path(source)
    if not path.exists():
        raise RentstackError(f"--model-config {source}: no such file or directory: check the path")
    config = path / "config.json" if path.is_dir() else path
    try:
        # allow_unknown: an architecture the planner does not model is not a malformed file
        load_arch(config, allow_unknown=True)
    except RentstackError as exc:
        raise RentstackError(f"--model-config: {exc}") from None  # the planner's message names the file
    except _PLANNER_FAULTS as exc:
        raise RentstackError(f"--model-config {config}: {_config_fault(config, exc)}") from None


_PLANNER_FAULTS = (ValueError, TypeError, ArithmeticError, AttributeError, KeyError, IndexError, RecursionError)
"""What the planner's arithmetic raises on a config.json with the wrong kind of value."""


def _config_fault(config: Path, exc: Exception) -> str:
    """Which field of config.json the planner choked on: among the suspicious values (text where a
    number belongs, NaN, a list, zero or negative), the one whose removal changes the error."""
    from rentstack.plan import load_arch

    data = json.loads(config.read_text())  # load_arch parsed it already
    if not isinstance(data, dict):
        return f"holds a JSON {type(data).__name__}, not an object of fields; use the model's config.json"

    def fails_the_same(candidate: dict) -> bool:
        try:
            load_arch(candidate, allow_unknown=True)
        except Exception as other:  # noqa: BLE001 - any other outcome means this field mattered
            return type(other) is type(exc) and str(other) == str(exc)
        return False

    scopes: list[tuple[str, dict, list[str]]] = [("", data, [])]
    if isinstance(data.get("text_config"), dict):  # the nested fields first: they win over the top level
        scopes.insert(0, ("text_config.", data["text_config"], ["text_config"]))
    for prefix, fields, where in scopes:
        for key, value in fields.items():
            if not _suspicious(value):
                continue
            trial = json.loads(json.dumps(data))
            inner = trial[where[0]] if where else trial
            del inner[key]
            if not fails_the_same(trial):
                return (f"field {prefix}{key} is {json.dumps(value)[:60]}, which the planner cannot use "
                        f"({type(exc).__name__}); fix it or take the model's config.json from the hub")
    return f"the planner cannot read it ({type(exc).__name__}: {str(exc)[:120]}); use the model's config.json"


def _suspicious(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (list, dict)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return True
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return isinstance(value, (int, float)) and value <= 0


def _read(source: str) -> LogFacts:
    if source == "-":
        return read_facts(iter_lines(sys.stdin.buffer))
    path = Path(source)
    if path.is_dir():
        raise RentstackError(f"{source} is a directory; give the log file itself")
    try:
        with path.open("rb") as fh:
            return read_facts(iter_lines(fh))
    except FileNotFoundError:
        raise RentstackError(f"log file {source}: no such file: check the path (or pass - to read standard input)") from None
    except PermissionError:
        raise RentstackError(f"log file {source}: permission denied") from None


def _save(diagnosis: Diagnosis, card: str, inputs: PlannerInputs) -> Path:
    if diagnosis.status != "ok":
        raise RentstackError("--save-calibration needs a log of a successful start; this one "
                             f"{'failed: ' + diagnosis.cause if diagnosis.cause else 'did not finish'}")
    version, model = diagnosis.figures.get("vllm_version"), diagnosis.figures.get("model")
    if not card:
        total = diagnosis.figures.get("total_gpu_gib") or inputs.gpu_mem_gib
        raise RentstackError("--save-calibration needs --card NAME (e.g. --card 'RTX 4090')"
                             + (f"; the log's card has {total} GiB" if total else ""))
    if not version or not model:
        raise RentstackError("--save-calibration: the log has no version banner or model name "
                             "(capture it from the server's first line)")
    return save_calibration(card, version, model, diagnosis.figures, gpu_mem_gib=inputs.gpu_mem_gib)


def render_text(d: Diagnosis) -> str:
    """The human form: status line, explanation, then the fixes with cost and prediction."""
    head = "OK" if d.status == "ok" else f"FAILED: {d.cause}" + (f" during {d.phase}" if d.phase else "")
    lines = [head, "", d.explanation]
    if d.evidence and d.status != "ok":
        lines += ["", f"  log: {d.evidence[:300]}"]
    if d.fixes:
        lines += ["", "Fixes, best first:"]
        for i, fix in enumerate(d.fixes, 1):
            change = ", ".join(f"--{k} {_flag_value(v)}" for k, v in fix.changes.items()) or "(no flag change)"
            env = " ".join(f"{k}={v}" for k, v in fix.env.items())
            lines.append(f"  {i}. {change}" + (f"  with {env}" if env else ""))
            lines.append(f"     why:  {fix.why}")
            lines.append(f"     cost: {fix.cost}")
            if fix.predicted:
                p = fix.predicted
                bits = [f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) and not isinstance(v, bool)
                        else f"{k.replace('_', ' ')} {v}"
                        for k, v in p.items() if k in ("available_kv_gib", "kv_cache_tokens", "max_concurrency", "fits")
                        and v is not None]
                lines.append(f"     next start ({p.get('source')}): " + ", ".join(bits))
    elif d.status != "ok":
        lines += ["", "No launch flag fixes this; see the explanation above."]
    # The reader already strips escapes from log lines; values decoded from them (launch args) or
    # added later must not reach the terminal raw either.
    return "\n".join(strip_controls(line) for line in lines)


def _flag_value(v: object) -> str:
    if v is True:
        return "(on)"
    return str(v)
