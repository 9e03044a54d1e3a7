"""One batch of sequences decoding together over one shared KV cache.

Rows are left-padded: every row's cache has the same number of columns, and the attention mask
marks which columns are real for each row.  Positions are per row (its own token count), passed
explicitly so padding never shifts a row's rotary positions.  Rows join by merging batches (the
shorter cache is padded on the left) and leave by selecting the remaining rows (then columns
that no remaining row uses are cut off the left), so one forward pass steps every active
sequence.  Only caches made of plain full-attention layers merge; a model with another layer
kind (sliding windows, recurrent state) keeps one batch per admission instead (the scheduler
steps each).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

Row = TypeVar("Row")


class CausalLM:
    """The model and how to call it: one forward over new tokens, logits of the last one."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config = model.config
        self.device: torch.device = model.device
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name still works,
        # with a warning per call).
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        pad = getattr(self.config, "pad_token_id", None)
        self.pad_id = pad if isinstance(pad, int) else 0

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.config)

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: DynamicCache,
    ) -> torch.Tensor:
        """Logits ([rows, vocab], float32) for the last input position of each row."""
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: cache},
        )
        return out.logits[:, -1, :].float()


class Batch(Generic[Row]):
    def __init__(
        self,
        lm: CausalLM,
        rows: list[Row],
        cache: DynamicCache,
        mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> None:
        self.lm = lm
        self.rows = rows
        self.cache = cache
        self.mask = mask  # [rows, cache columns], 1 where the column is a real token of the row
        self.positions = positions  # [rows], the position of each row's next input token
        self.inputs: torch.Tensor | None = None  # [rows], the next input token of each row

    @classmethod
    def prefill(
        cls, lm: CausalLM, rows: list[Row], prompts: Sequence[Sequence[int]]
    ) -> tuple[Batch[Row], torch.Tensor]:
        """Run the prompts (left-padded to one length); the batch and each row's next logits."""
        width = max(len(p) for p in prompts)
        device = lm.device
        ids = torch.full((len(prompts), width), lm.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt) :] = 1
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        cache = lm.new_cache()
        logits = lm.forward(ids, mask, positions, cache)
        return cls(lm, rows, cache, mask, positions[:, -1] + 1), logits

    def decode(self) -> torch.Tensor:
        """One step: feed each row's next input token; the logits after it."""
        assert self.inputs is not None, "advance() sets the inputs before each step"
        ones = torch.ones((len(self.rows), 1), dtype=self.mask.dtype, device=self.mask.device)
        mask = torch.cat([self.mask, ones], dim=1)
        logits = self.lm.forward(self.inputs[:, None], mask, self.positions[:, None], self.cache)
        self.mask = mask
        self.positions = self.positions + 1
        return logits

    def advance(self, keep: list[int], next_inputs: list[int]) -> None:
        """Keep only the rows at ``keep`` (in order), whose next inputs are ``next_inputs``."""
        if len(keep) != len(self.rows):
            index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
            self.rows = [self.rows[i] for i in keep]
            self.mask = self.mask.index_select(0, index)
            self.positions = self.positions.index_select(0, index)
            if keep:
                self.cache.batch_select_indices(index)
                self._cut_unused_columns()
        self.inputs = torch.tensor(next_inputs, dtype=torch.long, device=self.mask.device)

    def can_merge(self, other: Batch[Row]) -> bool:
        return _plain(self.cache) and _plain(other.cache)

    def merge(self, other: Batch[Row]) -> None:
        """Append ``other``'s rows (after both have advanced); the shorter cache is left-padded."""
        assert self.inputs is not None and other.inputs is not None
        width = max(self.mask.shape[1], other.mask.shape[1])
        for a, b in zip(_layers(self.cache), _layers(other.cache), strict=True):
            a.keys = torch.cat([_pad_left(a.keys, width), _pad_left(b.keys, width)], dim=0)
            a.values = torch.cat([_pad_left(a.values, width), _pad_left(b.values, width)], dim=0)
        self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(other.mask, width)], dim=0)
        self.positions = torch.cat([self.positions, other.positions])
        self.inputs = torch.cat([self.inputs, other.inputs])
        self.rows = self.rows + other.rows

    def _cut_unused_columns(self) -> None:
        """Drop leading columns that are padding for every remaining row."""
        if not _plain(self.cache):
            return
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.mask.shape[1]
        if start == 0:
            return
        self.mask = self.mask[:, start:]
        for layer in _layers(self.cache):
            layer.keys = layer.keys[..., start:, :]
            layer.values = layer.values[..., start:, :]


def _layers(cache: DynamicCache) -> list[Any]:
    """The cache's layers, once ``_plain`` said they are all initialised full-attention
    ``DynamicLayer``s (their ``keys``/``values`` are tensors, not None)."""
    return list(cache.layers)


def _plain(cache: DynamicCache) -> bool:
    return all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers)


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Pad the sequence dimension (the last for a mask, the third for keys/values) with zeros."""
    dim = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
