"""The proxy's training loop: one model, reset to the same weights for every run (docs/design.md §1.4).

Training sequences are packed as causal language-model pretraining packs them:
each epoch, the selection's documents, each followed by the tokenizer's
end-of-text token, are shuffled, concatenated and cut into blocks of
``sequence_length`` tokens, so no step spends compute on padding and no
document is truncated (a long one spans blocks); only an epoch's last block may
be shorter. The seed orders documents, so it changes which share a block. ``Recipe(pack=False)`` keeps the earlier recipe,
one document per sequence truncated to ``sequence_length`` and padded within
its batch, for comparison (tools/bench_proxy.py).
"""
from __future__ import annotations

import math

import torch

from nagindex.backbone import default_dtype
from nagindex.errors import NagindexError


def load_proxy(model_name: str, proxy_model: str | None, device: str | None):
    """``(model, tokenizer, name)``: float32 weights on the training device.

    ``model_name``: the index's backbone, trained when ``proxy_model`` (a
    Hugging Face causal LM directory) is None; ``device``: as ``--device``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nagindex.backbone import load_backbone, resolve_device

    dev = resolve_device(device)
    if proxy_model is None:
        backbone = load_backbone(model_name, str(dev), torch.float32)
        return backbone.model, backbone.tokenizer, backbone.identity.name
    try:
        model = AutoModelForCausalLM.from_pretrained(proxy_model, dtype=torch.float32).to(dev)
        tokenizer = AutoTokenizer.from_pretrained(proxy_model)
    except (OSError, ValueError) as e:
        raise NagindexError(f"--proxy-model {proxy_model}: not a causal language model directory ({e})") from None
    return model, tokenizer, str(proxy_model)


class Trainer:
    """One proxy model, trained from the same initial weights for every run.

    ``recipe``: a ``nagindex.analyses.proxy.Recipe`` (learning rate, epochs,
    sequence length, batch size, warm-up, packing).
    """

    def __init__(self, model, tokenizer, recipe):
        self.model, self.tokenizer, self.recipe = model, tokenizer, recipe
        self.device = next(model.parameters()).device
        self.autocast = default_dtype(self.device) == torch.bfloat16
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # The end of a document: EOS where the tokenizer has one (every pretrained LM does).
        ends = (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id)
        self.separator = next((i for i in ends if i is not None), 0)
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @property
    def precision(self) -> str:
        return "bfloat16 autocast" if self.autocast else "float32"

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, up to the sequence length; texts of fewer than two tokens teach nothing."""
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        return [i[: self.recipe.sequence_length] for i in ids if len(i) >= 2]

    def sequences(self, texts: list[str], tokens: int) -> list[list[int]]:
        """What one epoch trains on: each document's ids (packed: ending in the separator), at most ``tokens``.

        The budget chose ``texts`` by the index's token counts; the proxy's
        tokenizer may count more, so the documents are cut at ``tokens``.
        """
        if not self.recipe.pack:
            return self.encode(texts)
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []
        out, left = [], tokens
        for doc in ids:
            if left <= 0:
                break
            out.append([*doc, self.separator][:left])
            left -= len(out[-1])
        return out

    def _epoch(self, documents: list[list[int]], order: torch.Generator) -> list[list[int]]:
        """One epoch's sequences: the documents in a fresh order, packed into blocks where the recipe packs."""
        shuffled = [documents[i] for i in torch.randperm(len(documents), generator=order).tolist()]
        if not self.recipe.pack:
            return shuffled
        stream, length = [t for doc in shuffled for t in doc], self.recipe.sequence_length
        return [stream[at:at + length] for at in range(0, len(stream) - 1, length)]

    def reset(self) -> None:
        self.model.load_state_dict(self.initial)

    def _batch_loss(self, batch: list[list[int]]) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy of a batch (right-padded where ragged), and the tokens it covers."""
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="sum")
        return loss, int((labels != -100).sum())

    @torch.no_grad()
    def loss(self, sequences: list[list[int]]) -> float:
        """Mean next-token loss (nats per token) over ``sequences``, batched by similar lengths to pad little.

        Batches of the training step's size: on a 2-core CPU the loss of 64
        docstrings on SmolLM2-135M took twice as long in batches of 32.
        """
        if not sequences:
            raise NagindexError("the held-out examples need at least two tokens each for a loss")
        self.model.eval()
        ordered = sorted(sequences, key=len)
        total, count = 0.0, 0
        for start in range(0, len(ordered), self.recipe.batch_size):
            loss, n = self._batch_loss(ordered[start:start + self.recipe.batch_size])
            total, count = total + float(loss), count + n
        return total / count

    def train(self, sequences: list[list[int]], seed: int, bar) -> None:
        """The recipe's continued pretraining on ``sequences``, in an order drawn from ``seed``."""
        from transformers import get_linear_schedule_with_warmup

        r = self.recipe
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        epochs = [self._epoch(sequences, order) for _ in range(r.epochs)]
        steps = sum(math.ceil(len(e) / r.batch_size) for e in epochs)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=r.learning_rate, weight_decay=0.0)
        schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(r.warmup * steps), max(steps, 1))
        self.model.train()
        for shuffled in epochs:
            for start in range(0, len(shuffled), r.batch_size):
                batch = shuffled[start:start + r.batch_size]
                loss, n = self._batch_loss(batch)
                (loss / max(n, 1)).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                bar.update(sum(map(len, batch)))
