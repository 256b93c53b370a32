"""Where each neuron type lives inside a backbone.

A neuron type names a linear projection inside every decoder layer; a neuron is
one output channel of it. The mapping from type to module path differs between
architectures, so it is a small table keyed by the ``model_type`` of the
transformers config. Llama-style decoders share one layout; another layout is
one entry in ``LAYOUTS`` (or one call to ``register_layout``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import NagindexError

NEURON_TYPES = ("fwd_up", "fwd_down", "att_q", "att_k", "att_v", "att_o")
DEFAULT_TYPE = "fwd_up"


@dataclass(frozen=True)
class Layout:
    """Module paths, relative to the decoder body, of the layers and each type."""

    layers: str
    modules: dict[str, str]
    #: Types whose channels are repeated over the key-value groups, as the
    #: attention itself does, so that they count ``num_heads x head_dim`` neurons.
    grouped: tuple[str, ...] = ("att_k", "att_v")


_LLAMA = Layout(
    layers="layers",
    modules={
        "fwd_up": "mlp.up_proj",
        "fwd_down": "mlp.down_proj",
        "att_q": "self_attn.q_proj",
        "att_k": "self_attn.k_proj",
        "att_v": "self_attn.v_proj",
        "att_o": "self_attn.o_proj",
    },
)

LAYOUTS: dict[str, Layout] = {name: _LLAMA for name in ("llama", "mistral", "qwen2", "qwen3", "smollm3", "olmo", "olmo2")}


def register_layout(model_type: str, layout: Layout) -> None:
    """Teach nagindex another architecture (``config.model_type``)."""
    LAYOUTS[model_type] = layout


def layout_for(config) -> Layout:
    model_type = getattr(config, "model_type", None)
    if model_type not in LAYOUTS:
        arch = ", ".join(getattr(config, "architectures", None) or [str(model_type)])
        raise NagindexError(
            f"architecture {arch} (model_type {model_type!r}) has no neuron layout; "
            f"supported: {', '.join(sorted(LAYOUTS))}. Add one with "
            "nagindex.neurons.register_layout(model_type, Layout(...))."
        )
    return LAYOUTS[model_type]


def parse_types(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"fwd_up,att_q"`` or a sequence -> validated tuple, order kept, no repeats."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in (n.strip() for n in names):
        if name not in NEURON_TYPES:
            raise NagindexError(f"unknown neuron type {name!r}; choose from {', '.join(NEURON_TYPES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise NagindexError("no neuron type given")
    return tuple(out)
