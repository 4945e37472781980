"""Choosing the next token for each row: greedy, or temperature + top-p with the row's own generator."""

from __future__ import annotations

import torch

from fslm.runtime.types import GenerationParams


def row_generator(params: GenerationParams) -> torch.Generator | None:
    """A generator owned by one row, so a seeded row samples the same whether it is batched or alone."""
    if params.temperature == 0:
        return None
    generator = torch.Generator()
    if params.seed is None:
        generator.seed()
    else:
        generator.manual_seed(params.seed)
    return generator


def next_tokens(
    logits: torch.Tensor, params: list[GenerationParams], generators: list[torch.Generator | None]
) -> list[int]:
    """One token per row of `logits` ([rows, vocab], float32)."""
    greedy = logits.argmax(dim=-1).tolist()
    chosen = []
    for row, (row_params, generator) in enumerate(zip(params, generators, strict=True)):
        if generator is None:
            chosen.append(int(greedy[row]))
        else:
            probs = torch.softmax(logits[row] / row_params.temperature, dim=-1)
            chosen.append(sample_from(probs, row_params.top_p, generator))
    return chosen


def sample_from(probs: torch.Tensor, top_p: float, generator: torch.Generator | None) -> int:
    """An index drawn from the distribution `probs`, limited to its top-p nucleus."""
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p; the most likely token is always kept.
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def chosen_logprobs(logits: torch.Tensor, chosen: list[int]) -> list[float]:
    """Each row's log-probability of its chosen token under the model's untempered distribution."""
    picked = logits.gather(1, torch.tensor(chosen).unsqueeze(1)).squeeze(1)
    return (picked - torch.logsumexp(logits, dim=-1)).tolist()  # no vocabulary-wide tensor is written
