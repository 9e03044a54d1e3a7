"""The next token of every row of a batch: greedy, or temperature and top-p with a seed.

Sampling draws ``argmax(p / q)`` with ``q ~ Exp(1)`` per vocabulary entry (the exponential race,
equivalent to drawing from ``p``), so each row's randomness is one ``exponential_`` call on that
row's own ``torch.Generator``.  A row's draws therefore depend only on its seed and its own
logits: the same seed gives the same tokens whatever else is in the batch, as long as the
logits are the same (docs/runtime.md says when padding can change their last bits).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def next_tokens(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    generators: Sequence[torch.Generator],
) -> list[int]:
    """One token id per row of ``logits`` ([rows, vocab])."""
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    sampled_rows = [i for i, t in enumerate(temperatures) if t > 0]
    if not sampled_rows:
        return greedy.tolist()
    index = torch.tensor(sampled_rows, device=logits.device)
    temps = torch.tensor([temperatures[i] for i in sampled_rows], device=logits.device)
    probs = torch.softmax(logits.index_select(0, index) / temps[:, None], dim=-1)
    probs = _top_p(probs, [top_ps[i] for i in sampled_rows])
    noise = torch.empty_like(probs)
    for row, i in enumerate(sampled_rows):
        noise[row].exponential_(generator=generators[i])
    chosen = (probs / noise).argmax(dim=-1)
    tokens = greedy.clone()
    tokens[index] = chosen
    return tokens.tolist()


def _top_p(probs: torch.Tensor, top_ps: Sequence[float]) -> torch.Tensor:
    """Zero every token outside the smallest set whose probability reaches top_p (per row)."""
    if all(p >= 1.0 for p in top_ps):
        return probs
    limit = torch.tensor(top_ps, device=probs.device, dtype=probs.dtype)[:, None]
    ordered, order = probs.sort(dim=-1, descending=True)
    before = ordered.cumsum(dim=-1) - ordered  # mass of the tokens ranked above each token
    ordered = ordered.masked_fill(before >= limit, 0.0)
    ordered[:, 0] = probs.gather(1, order[:, :1]).squeeze(1)  # the top token always stays
    return torch.zeros_like(probs).scatter(1, order, ordered)


def generator_for(seed: int | None, device: torch.device) -> torch.Generator:
    """A request's own random stream: its seed, or a fresh random one."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed % (1 << 64))
    return generator
