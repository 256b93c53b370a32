"""Loading a backbone: never code from its folder, never a pickle; known by its weights' hash, not its path."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from helpers import build, query, rows
from nagindex.backbone import load_backbone
from nagindex.cli import main
from nagindex.errors import NagindexError


def _copy(model, dest):
    shutil.copytree(model, dest)
    return dest


def _corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                            for i, t in enumerate(["cell energy", "flour water", "cell water energy"])))
    return path


@pytest.mark.parametrize("where", ["config", "tokenizer"])
def test_a_model_folder_never_runs_its_own_code(tiny_model, tmp_path, where):
    folder = _copy(tiny_model, tmp_path / "custom")
    ran = tmp_path / "ran"
    (folder / "custom.py").write_text(f"open({str(ran)!r}, 'w').write('ran')\nclass Custom: pass\n")
    if where == "config":
        config = json.loads((folder / "config.json").read_text())
        config.update(model_type="nagindex-never-heard-of", auto_map={"AutoConfig": "custom.Custom",
                                                                        "AutoModelForCausalLM": "custom.Custom"})
        (folder / "config.json").write_text(json.dumps(config))
    else:
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["auto_map"] = {"AutoTokenizer": ["custom.Custom", None]}
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["build", str(_corpus(tmp_path)), "-o", str(tmp_path / "i"), "--model", str(folder),
                                       "--quiet"], input="y\ny\ny\n")
    assert not ran.exists()
    if where == "config":           # nothing transformers knows can stand in for the folder's code
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert str(folder) in result.output and "never runs" in result.output
    else:                           # the tokenizer transformers has is used instead
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("spec, said", [("{tmp}/no/such/model", "no such folder"),
                                         ("./missing-model", "no such folder"),
                                         ("{tmp}/weights.bin", "a file, neither a model folder nor a .gguf file")])
def test_a_model_path_that_is_no_model_is_named_without_asking_the_hub(tmp_path, spec, said):
    (tmp_path / "weights.bin").write_bytes(b"0")
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(NagindexError, match=rf"^--model {re.escape(spec)}: {said} \(a model is a folder"):
        load_backbone(spec)


def test_pickle_only_weights_are_refused_in_one_line(tiny_model, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _copy(tiny_model, tmp_path / "pickled")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(NagindexError, match=r"pickled: its weights are pickles \(pytorch_model.bin\)") as caught:
        load_backbone(str(folder), "cpu")
    assert "\n" not in str(caught.value)


def test_a_relative_model_path_works_from_anywhere_and_moved_weights_are_found_by_hash(tiny_model, demo, tmp_path,
                                                                                        monkeypatch):
    models = tmp_path / "models"
    _copy(tiny_model, models / "tiny")
    index = tmp_path / "i"
    monkeypatch.chdir(models)
    build("tiny", demo / "corpus" / "web-00.jsonl", index)
    monkeypatch.chdir(tmp_path)
    first = rows(query(index, demo / "targets.jsonl", "-k", "5").output)
    assert len(first) == 5
    build(models / "tiny", demo / "corpus" / "web-02.parquet", index, "--append")      # the same weights, another path
    _copy(models / "tiny", tmp_path / "elsewhere")
    build(tmp_path / "elsewhere", demo / "corpus" / "web-01.jsonl.gz", index, "--append")
    shutil.rmtree(models)
    shutil.move(tmp_path / "elsewhere", tmp_path / "moved")
    targets = tmp_path / "new-targets.jsonl"                                           # not cached: needs the backbone
    targets.write_text(json.dumps({"text": "cell energy water", "target": "t"}) + "\n")
    gone = query(index, targets, "-k", "5", ok=False)
    assert gone.exit_code == 1 and "--model" in gone.output and "Traceback" not in gone.output
    assert len(rows(query(index, targets, "-k", "5", "--model", tmp_path / "moved").output)) == 5
    other = _copy(tiny_model, tmp_path / "other")
    (other / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    targets.write_text(json.dumps({"text": "flour energy", "target": "t"}) + "\n")
    refused = query(index, targets, "-k", "5", "--model", other, ok=False)
    assert refused.exit_code == 1 and "sha256" in refused.output


@pytest.mark.backbone
def test_a_first_dequantization_killed_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAGINDEX_CACHE", str(cache))
    child = subprocess.Popen([sys.executable, "-c", "from nagindex.backbone import load_backbone; load_backbone(None, 'cpu')"],
                             env={**os.environ, "NAGINDEX_CACHE": str(cache)})
    deadline = time.monotonic() + 300
    while not list(cache.glob(".*.tmp-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.kill()
    child.wait()
    assert list(cache.glob(".*.tmp-*")), "the child was not caught while writing"
    backbone = load_backbone(None, "cpu")
    assert backbone.identity.name == "smollm2-135m-instruct"
    assert not list(cache.glob(".*.tmp-*"))
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1
