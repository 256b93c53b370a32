"""Fixtures: a tiny randomly initialised Llama, built here, and small corpora.

The tiny model exercises every code path of extraction and indexing in
milliseconds; the real default backbone is used only where a test needs real
behaviour (parity with the reference, one end-to-end run).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity" / "official-smollm2"


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    """Keep backbone caches and target caches out of the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NAGINDEX_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.delenv("NAGINDEX_INDEX", raising=False)
    yield
    mp.undo()


def _tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 4-layer Llama with grouped key-value heads, saved like any HF model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from nagindex.demo import make_demo

    demo = tmp_path_factory.mktemp("vocab")
    make_demo(demo, docs=200, seed=1)
    words = sorted({w for p in (demo / "corpus").rglob("*.jsonl") for line in p.read_text().splitlines()
                    for w in json.loads(line)["text"].replace(".", " . ").split()})
    tokenizer = _tokenizer(words)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def demo(tmp_path) -> Path:
    """A small mixed-domain corpus with targets for two tasks."""
    from nagindex.demo import make_demo

    make_demo(tmp_path / "demo", docs=60, seed=0)
    return tmp_path / "demo"


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The same small corpus as ``demo``, shared by every test that only reads it."""
    from nagindex.demo import make_demo

    path = tmp_path_factory.mktemp("shared") / "demo"
    make_demo(path, docs=60, seed=0)
    return path


@pytest.fixture(scope="session")
def ordered_index(tiny_model, demo_corpus) -> Path:
    """``demo_corpus`` built with ``--codes ordered`` (impact order: ``--top-k K' < K``), once."""
    from helpers import build

    path = demo_corpus.parent / "ordered.index"
    build(tiny_model, demo_corpus / "corpus", path, "--codes", "ordered")
    return path


@pytest.fixture(scope="session")
def demo_index(tiny_model, demo_corpus) -> Path:
    """``demo_corpus`` built with the tiny model, once; tests that change an index take a copy."""
    from helpers import build

    path = demo_corpus.parent / "demo.index"
    build(tiny_model, demo_corpus / "corpus", path)
    return path


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY.is_dir():
        pytest.skip(f"the parity fixture is not at {PARITY} (it lives beside the repository, in shared/parity)")
    return PARITY


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on localhost, and fsspec configured to reach it.

    Yields a function that uploads a local directory to a fresh bucket and returns its s3:// URL.
    """
    import logging

    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    mp = pytest.MonkeyPatch()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        mp.setenv(name, value)
    mp.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://{host}:{port}"})
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    buckets = iter(range(10**6))

    def upload(local: Path, bucket: str | None = None) -> str:
        bucket = bucket or f"bucket-{next(buckets)}"
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        for path in sorted(Path(local).rglob("*")):
            if path.is_file():
                fs.put_file(str(path), f"{bucket}/{path.relative_to(local).as_posix()}")
        fsspec.filesystem("s3").invalidate_cache()
        return f"s3://{bucket}"

    yield upload
    mp.undo()
    server.stop()
