"""One prepared check of everything nagindex does on a GPU, for a lent machine.

Runs four sections, each in a process of its own under its own time budget
(a section that fails, hangs or is killed loses only its own remaining
results, and its error is recorded), and writes ``OUT/gpu_check.json`` and
``OUT/gpu_check.md``:

1. ``extraction``: ``qwen3-0.6b`` and ``qwen3-1.7b`` (randomly initialised,
   ``tools.bench_extract``) in bfloat16: tokens/s and MFU against the card's
   bf16 dense peak, padded batches against packed rows, packed rows with
   ``torch.compile``;
2. ``parity``: the default backbone in float32 on the device against the
   parity fixture (codes, ranking) and against the CPU (impacts), and
   bfloat16's layer sets against float32's;
3. ``faiss``: Flat and IVF indexes built and searched with faiss-gpu against
   faiss-cpu on the same vectors: recall@k of the GPU's result, speed ratios;
4. ``scoring``: ``query.scoring_torch`` against the CPU scan on the same
   codes: identical scores and ranking, speed ratio.

``--tiny`` (or ``NAGINDEX_GPU_CHECK_TINY=1``) shrinks every size so that the
same code runs in seconds; with ``--device cpu`` the device side of each
comparison is the CPU. Budgets add up to under six minutes (docs/scale.md).

    bash tools/gpu_check.sh                     # on the GPU machine, into ./gpu_check_out
    bash tools/gpu_check.sh --device cpu --tiny
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from nagindex.atomic import write_json

from tools import gpu_sections

#: Seconds each section may take, its process's start included: 330 s in all.
BUDGETS = {"extraction": 185, "parity": 60, "faiss": 45, "scoring": 40}
SECTIONS = {"extraction": gpu_sections.extraction, "parity": gpu_sections.parity,
            "faiss": gpu_sections.faiss_search, "scoring": gpu_sections.scoring}

#: Dense bf16 TFLOP/s by card, first match of a lower-cased name's words wins (vendors' data sheets).
PEAKS = ((("h200",), 989.0), (("h100", "pcie"), 756.0), (("h100", "nvl"), 835.0), (("h100",), 989.0),
         (("a100",), 312.0))

REPO = Path(__file__).resolve().parents[1]


def peak_tflops(card: str) -> float | None:
    """The card's bf16 dense peak, or None for a card not in ``PEAKS`` (then MFU is not reported)."""
    name = card.lower()
    return next((peak for words, peak in PEAKS if all(w in name for w in words)), None)


def card_name(device: str) -> str:
    """The card's name; where the device cannot be reached, why (each section then records its own error)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return f"{platform.processor() or platform.machine()} ({dev.type})"
    try:
        return torch.cuda.get_device_name(dev)
    except (AssertionError, RuntimeError) as e:
        return f"unavailable ({e})"


def find_parity(given: Path | None) -> Path | None:
    """The parity fixture: ``given``, else ``shared/parity/official-smollm2`` in or beside the repository."""
    if given is not None:
        return given if given.is_dir() else None
    for root in (REPO, REPO.parent):
        path = root / "shared" / "parity" / "official-smollm2"
        if path.is_dir():
            return path
    return None


# -- one section, in its own process ----------------------------------------------------

def run_section(args) -> int:
    """Run ``args.section``, rewriting ``args.result`` after each result it measures."""
    state = {"status": "running", "results": {}}

    def keep(key, value):
        state["results"][key] = value
        write_json(args.result, state)

    sizes = gpu_sections.Sizes.tiny() if args.tiny else gpu_sections.Sizes()
    try:
        reason = SECTIONS[args.section](sizes, args.device, peak_tflops=args.peak, parity_dir=args.parity, keep=keep)
    except Exception as e:        # recorded, not raised: the parent reads the file, not a traceback on a pipe
        state.update(status="error", error=f"{type(e).__name__}: {e}",
                     traceback=traceback.format_exc(limit=-6).splitlines())
        write_json(args.result, state)
        return 1
    state.update(status="skipped", reason=reason) if reason else state.update(status="ok")
    write_json(args.result, state)
    return 0


def spawn(name: str, args, budget: float, card: dict) -> dict:
    """The section's record: what its process wrote, with how it ended and how long it took."""
    result = args.out / f".{name}.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tools.gpu_check", "--section", name, "--result", str(result),
           "--device", args.device, *(["--tiny"] if args.tiny else []),
           *(["--parity", str(args.parity)] if args.parity else []),
           *(["--peak", str(card["peak_tflops"])] if card["peak_tflops"] else [])]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)   # its own group: compile workers die with it
    try:
        _, stderr = proc.communicate(timeout=budget)
        ended = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        ended = f"stopped at its budget of {budget:.0f} s"
    record = json.loads(result.read_text()) if result.exists() else {"results": {}}
    result.unlink(missing_ok=True)
    if ended:
        record.update(status="timeout", error=ended)
    elif proc.returncode != 0 and record.get("status") != "error":
        record.update(status="error", error=f"exit status {proc.returncode}: " + " | ".join(stderr.strip().splitlines()[-5:]))
    record.update(seconds=round(time.perf_counter() - t, 2), budget_s=budget)
    return record


# -- the report -----------------------------------------------------------------------

def fmt(x, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def summary(name: str, results: dict) -> str:
    """The section's figures in one table cell."""
    if name == "extraction":
        return "; ".join(f"{r['config']} {r['layout']}: {r['tokens_per_s']:,.0f} tok/s, MFU {fmt(r['mfu'], '.1%')}"
                         for r in results.values())
    if name == "parity":
        out = []
        if "float32" in results:
            r = results["float32"]
            out.append(f"fwd_up codes identical {r['fwd_up_codes_identical']}, ranking identical "
                       f"{r['ranking_identical']} (distances within {r['distance_max_abs_diff']:.1e})")
        if "float32 vs cpu" in results:
            out.append(f"impacts vs CPU max abs diff {max(results['float32 vs cpu']['impacts_max_abs_diff'].values()):.2e}")
        if "bfloat16" in results:
            out.append(f"bf16 fwd_up layer sets equal float32 {results['bfloat16']['layer_sets_equal_float32']['fwd_up']:.1%}")
        return "; ".join(out)
    if name == "faiss":
        return "; ".join(f"{spec}: recall@{r['k']} {r['recall_at_k_vs_cpu']:.3f}, search {r['search_speedup']:.2f}x, "
                         f"build {r['build_speedup']:.2f}x" for spec, r in results.items())
    r = results.get("scan")
    return "" if r is None else (f"scores identical {r['scores_identical']}, ranking identical {r['ranking_identical']}, "
                                 f"{r['speedup']:.2f}x the CPU scan ({r['documents']:,} docs)")


def markdown(report: dict) -> str:
    card = report["device"]
    lines = [f"# GPU check, {report['started']}", "",
             f"Device `{card['device']}`: {card['name']}, bf16 peak {fmt(card['peak_tflops'])} TFLOP/s; "
             f"torch {card['torch']}; sizes {'tiny' if report['tiny'] else 'full'}.", "",
             "| section | status | seconds (budget) | figures | error or reason |", "|---|---|---|---|---|"]
    for name, s in report["sections"].items():
        why = (s.get("error") or s.get("reason") or "").replace("|", "/")
        lines.append(f"| {name} | {s['status']} | {s['seconds']:.1f} ({s['budget_s']:.0f}) | "
                     f"{summary(name, s['results']).replace('|', '/')} | {why} |")
    rows = report["sections"].get("extraction", {}).get("results", {})
    if rows:
        lines += ["", "| model | layout | compile | tokens | tokens/s | MFU | first pass s | codes vs eager |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['config']} | {r['layout']} | {r['compile'] or 'off'} | {r['tokens']:,} | "
                  f"{r['tokens_per_s']:,.0f} | {fmt(r['mfu'], '.1%')} | {r['first_pass_s']:.1f} | "
                  f"{fmt(r.get('layer_sets_equal_eager'), '.1%')} |" for r in rows.values()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="where the device side runs [default: cuda]")
    ap.add_argument("--tiny", action="store_true", default=os.environ.get("NAGINDEX_GPU_CHECK_TINY") == "1",
                    help="sizes that run in seconds, on any device")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"),
                    help="where gpu_check.json and gpu_check.md go [default: $OUT, else ./gpu_check_out]")
    ap.add_argument("--parity", type=Path, default=None,
                    help="the parity fixture [default: shared/parity/official-smollm2 in or beside the repository]")
    ap.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    ap.add_argument("--budget", action="append", default=[], metavar="SECTION=SECONDS",
                    help=f"another time budget for a section [defaults: {BUDGETS}]")
    ap.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)   # a spawned section
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--peak", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.section:
        return run_section(args)

    budgets = dict(BUDGETS)
    for item in args.budget:
        name, _, seconds = item.partition("=")
        if name not in budgets or not seconds.replace(".", "", 1).isdigit():
            ap.error(f"--budget {item!r}: write SECTION=SECONDS, SECTION one of {', '.join(budgets)}")
        budgets[name] = float(seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    args.out = args.out.resolve()
    args.parity = find_parity(args.parity.resolve() if args.parity else None)

    import torch

    card = {"device": args.device, "name": card_name(args.device), "torch": torch.__version__,
            "cuda": torch.version.cuda}
    card["peak_tflops"] = peak_tflops(card["name"])
    report = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "tiny": args.tiny, "device": card, "parity_fixture": str(args.parity) if args.parity else None,
              "sections": {}}
    for name in args.sections:
        report["sections"][name] = spawn(name, args, budgets[name], card)
        write_json(args.out / "gpu_check.json", report)            # each section's results as soon as it ends
        (args.out / "gpu_check.md").write_text(markdown(report))
        print(f"{name}: {report['sections'][name]['status']} in {report['sections'][name]['seconds']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
