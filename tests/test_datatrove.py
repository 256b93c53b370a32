"""``nagindex profile`` and the datatrove step: documents scored in a pipeline as in the index."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from helpers import query, rows, run

pytest.importorskip("datatrove")
from datatrove.data import Document  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from nagindex.datatrove import NAGScorer  # noqa: E402
from nagindex.errors import IndexStateError, InputError  # noqa: E402
from query import Selector, read_targets  # noqa: E402
from query.profile import ScoreSpec  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def _texts(demo_corpus) -> list[str]:
    """Documents the pool does not hold: the target examples, and pairs of them joined."""
    examples = read_targets(demo_corpus / "targets.jsonl").texts
    return examples + [f"{a} {b}" for a, b in zip(examples[::2], examples[1::2])]


@pytest.fixture(scope="module")
def profiles(demo_index, demo_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("profiles") / "profiles.npz"
    run("profile", demo_corpus / "targets.jsonl", "-i", demo_index, "-o", path)
    return path


def test_a_pipeline_scores_documents_as_the_selector_does(profiles, demo_index, demo_corpus, tmp_path):
    texts = _texts(demo_corpus)
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "docs.jsonl", "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"new-{i}", "text": t}) + "\n")
    LocalPipelineExecutor(pipeline=[
        JsonlReader(str(tmp_path / "in")),
        NAGScorer(profiles, batch_size=5),
        JsonlWriter(str(tmp_path / "out"), compression=None),
    ], tasks=1, logging_dir=str(tmp_path / "logs")).run()
    out = [json.loads(line) for p in sorted((tmp_path / "out").glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert [d["id"] for d in out] == [f"new-{i}" for i in range(len(texts))]

    selector = Selector(demo_index)
    targets = read_targets(demo_corpus / "targets.jsonl")
    prof = selector.profiles(targets, ScoreSpec(weighting="auto"))   # the command's default
    expected = selector.score_texts(texts, prof)
    got = np.array([[d["metadata"]["nag_similarity"][name] for name in prof.names] for d in out])
    np.testing.assert_array_equal(got, expected)


def test_a_quantile_keeps_what_the_pool_would(profiles, demo_index, demo_corpus):
    """The pool's own documents, run through the step, keep the share of the pool asked for."""
    pool = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "1000", "--with-text", "--dedup").output)
    docs = [Document(text=r["text"], id=r["id"]) for r in pool]
    step = NAGScorer(profiles, quantile=0.75)
    kept = list(step.run(iter(docs)))
    sims = np.array([[d.metadata["nag_similarity"][n] for n in step.saved.names] for d in docs])
    cut = step.saved.pool_cut(0.75)
    assert {d.id for d in kept} == {d.id for d, s in zip(docs, sims) if (s >= cut).any()}
    for m in range(len(cut)):
        assert abs((sims[:, m] >= cut[m]).mean() - 0.25) < 0.05
    assert len(list(NAGScorer(profiles, threshold=float(sims.max()) + 1.0).run(iter(docs)))) == 0
    only = NAGScorer(profiles, threshold={"science_qa": 0.0})
    assert len(list(only.run(iter(docs)))) == len(docs)


def test_the_step_travels_without_its_backbone(profiles):
    step = NAGScorer(profiles)
    step.score(["a first text to load the backbone"])
    copy = pickle.loads(pickle.dumps(step))
    assert copy._extractor is None
    np.testing.assert_array_equal(copy.score(["some text"]), step.score(["some text"]))


def test_mistakes_are_one_line(profiles, tmp_path, tiny_model):
    with pytest.raises(InputError, match="not a profiles file"):
        NAGScorer(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="not both"):
        NAGScorer(profiles, threshold=0.5, quantile=0.5)
    with pytest.raises(InputError, match="no target named nope"):
        NAGScorer(profiles, threshold={"nope": 0.5})
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)

    weights = next(other.glob("*.safetensors"))
    tensors = load_file(weights)
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(IndexStateError, match="backbone"):
        NAGScorer(profiles, model=str(other)).score(["text"])


def test_profile_command_refuses_what_it_cannot_write(demo_index, demo_corpus, tmp_path):
    result = run("profile", demo_corpus / "targets.jsonl", "-i", demo_index, "-o", tmp_path / "p.txt", ok=False)
    assert "p.txt" in result.output and ".npz" in result.output and not (tmp_path / "p.txt").exists()
