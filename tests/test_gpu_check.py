"""The prepared GPU check (tools/gpu_check.sh), run on the CPU at tiny sizes so that it stays runnable."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PARITY
from tools.gpu_check import peak_tflops

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ["extraction", "parity", "faiss", "scoring"]


def gpu_check(out: Path, *args: str) -> tuple[dict, str]:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh"), *args], env=env, check=True,
                   capture_output=True, text=True)
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def table_rows(md: str) -> list[str]:
    return [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "---" not in line]


@pytest.mark.backbone
def test_every_section_runs_on_the_cpu_and_is_reported(tmp_path):
    # the budgets are the GPU machine's; a busy CPU gets more time rather than a failure
    budgets = [arg for name in SECTIONS for arg in ("--budget", f"{name}=600")]
    report, md = gpu_check(tmp_path / "out", "--device", "cpu", "--tiny", "--parity", str(PARITY), *budgets)
    sections = report["sections"]
    assert list(sections) == SECTIONS and report["tiny"] and report["device"]["peak_tflops"] is None

    rows = list(sections["extraction"]["results"].values())
    assert sections["extraction"]["status"] == "ok", sections["extraction"]
    assert {(r["config"], r["layout"]) for r in rows} == {(c, layout) for c in ("qwen3-0.6b", "qwen3-1.7b")
                                                          for layout in ("padded", "packed", "packed, compiled")}
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is None for r in rows)     # no known peak for a CPU
    compiled = [r for r in rows if r["compile"]]
    assert all(r["layer_sets_equal_eager"] >= 0.99 and r["graphs_compiled_while_timed"] == 0 for r in compiled)
    assert compiled[0]["graphs_compiled"] > 0

    parity = sections["parity"]
    if PARITY.is_dir():
        assert parity["status"] == "ok", parity
        f32 = parity["results"]["float32"]
        assert f32["fwd_up_codes_identical"] and f32["ranking_identical"] and f32["distance_max_abs_diff"] < 1e-6
        assert all(0.0 <= v <= 1.0 for v in parity["results"]["bfloat16"]["layer_sets_equal_float32"].values())
    else:
        assert parity["status"] == "skipped" and "parity fixture" in parity["reason"]

    faiss = sections["faiss"]
    assert faiss["status"] == "ok" and set(faiss["results"]) == {"Flat", "IVF16,Flat"}
    assert all(r["recall_at_k_vs_cpu"] == 1.0 and r["search_speedup"] > 0 for r in faiss["results"].values())

    scan = sections["scoring"]["results"]["scan"]
    assert sections["scoring"]["status"] == "ok" and scan["scores_identical"] and scan["ranking_identical"]
    assert scan["speedup"] > 0

    assert table_rows(md)[:5] == ["section", *SECTIONS]
    assert "qwen3-1.7b" in md


def test_a_failing_or_overrunning_section_keeps_the_others(tmp_path):
    """Without a CUDA device: one section out of time, one without faiss-gpu, one failing; all recorded."""
    report, md = gpu_check(tmp_path / "out", "--device", "cuda", "--tiny", "--sections", "extraction", "faiss",
                           "scoring", "--budget", "extraction=1")
    sections = report["sections"]
    assert sections["extraction"]["status"] == "timeout" and "budget of 1 s" in sections["extraction"]["error"]
    assert sections["faiss"]["status"] == "skipped" and "no GPU support" in sections["faiss"]["reason"]
    assert sections["scoring"]["status"] == "error" and sections["scoring"]["error"]
    assert table_rows(md)[:4] == ["section", "extraction", "faiss", "scoring"]


def test_mfu_uses_the_cards_bf16_peak():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("Tesla T4") is None
