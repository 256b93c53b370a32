"""What a build is asked to do: the options of ``nagindex build``, shared by every engine."""
from __future__ import annotations

from dataclasses import dataclass, field

from nagindex.corpus import MAX_RECORD_SIZE
from nagindex.settings import ExtractSettings
from nagindex.template import Template
from nagindex.sketch import DEFAULT_DIM, DEFAULT_FAISS


@dataclass
class BuildOptions:
    model: str | None = None
    settings: ExtractSettings = field(default_factory=ExtractSettings)
    text_field: str = "text"
    template: Template | str | None = None    # makes each record's text from its fields, instead of text_field
    id_field: str = "id"
    split: str | None = None                  # the one split of a corpus of several to read (train, test ...)
    skip_bad: bool = False
    max_record_size: int = MAX_RECORD_SIZE    # bytes of one record at most
    append: bool = False
    shard: tuple[int, int] | None = None      # (i, N): build only the i-th of N parts
    window: int = 1024
    token_budget: int | None = None
    device: str | None = None
    dtype: str | None = None
    store_impacts: bool = False
    keep_fields: tuple[str, ...] = ()        # numeric corpus fields stored beside the codes
    terms: bool | None = None                 # BM25 term statistics; None: an index's own setting (else off)
    codes: str | None = None                  # "sets" or "ordered" (docs/design.md §2.1); None: an index's own (else sets)
    faiss: str = DEFAULT_FAISS
    sketch_dim: int = DEFAULT_DIM
    progress: bool = True
    engine: str = "local"                     # "local" or "ray" (see indexer.ray_build)
    ray_address: str | None = None

    def __post_init__(self):
        if isinstance(self.template, str):
            self.template = Template(self.template)
