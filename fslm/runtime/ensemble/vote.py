"""The vote of an ensemble: at each decoding step, one distribution over the candidate tokens of one row.

The decoder (`fslm.runtime.ensemble.decode`) owns alignment, caches and sampling; the vote only turns the
members' next-token scores into a distribution, so another way of voting is one more function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fslm.runtime.ensemble.alignment import TokenKey
from fslm.runtime.ensemble.members import LoadedMember


@dataclass(frozen=True)
class Ballot:
    """What a vote sees for one row at one step. Member lists are in the request's member order.

    - `members`: each member's `LoadedMember`; `member.text.score_id(key)` is the member's own token id whose
      logit scores a union key (None when its tokenizer cannot produce that text).
    - `logits`: each member's next-token logits over its own vocabulary (1-D, float32).
    - `tops`: each member's top-k tokens as keys (the text they stand for), best first.
    - `union`: the candidates, as keys: the primary member's top-k first, then the others' in member order,
      each once; keys that would leave the text invalid UTF-8 are dropped unless none is left.
    - `weights`: the members' weights, normalised to sum to 1.
    - `temperature`: the row's sampling temperature; 0 means greedy.
    """

    members: Sequence[LoadedMember]
    logits: Sequence[torch.Tensor]
    tops: Sequence[Sequence[TokenKey]]
    union: Sequence[TokenKey]
    weights: tuple[float, ...]
    temperature: float


Vote = Callable[[Ballot], torch.Tensor]
"""A vote: `Ballot` → a 1-D tensor of probabilities over `ballot.union` (non-negative, summing to 1).

The decoder takes the union key at its argmax (the first on ties) when the row is greedy, else samples it
after the row's top-p; the key is then appended to every member's text in the member's own tokens. When a
greedy row's members all have the same top token, the decoder takes that token without calling the vote,
so a vote must agree with a unanimous choice (any vote that averages the members' distributions with
weights ≥ 0 does). The default is `unite_vote`. A weighted vote in the manner of AdaBoost (EnsemW2S's α
weights, passed as the request's weights), in which each member gives its weight to its own top token:

    def top_token_vote(ballot: Ballot) -> torch.Tensor:
        votes = torch.zeros(len(ballot.union))
        for top, weight in zip(ballot.tops, ballot.weights, strict=True):
            if top[0] in ballot.union:
                votes[ballot.union.index(top[0])] += weight
        return votes / votes.sum()

    decode_ensemble(members, requests, vote=top_token_vote)
"""


def unite_vote(ballot: Ballot) -> torch.Tensor:
    """UniTE's vote: the weighted average of each member's softmax over the union of the members' top-k."""
    return union_average(ballot.members, ballot.logits, ballot.union, ballot.weights, ballot.temperature)


def union_average(
    members: Sequence[LoadedMember],
    logits: Sequence[torch.Tensor],
    union: Sequence[TokenKey],
    weights: tuple[float, ...],
    temperature: float,
) -> torch.Tensor:
    """The weighted average of each member's softmax over `union` (at `temperature`; 0 counts as 1).

    A member that can produce none of the union (it lacks the one special token left) has no softmax over
    it and sits this step out; the others' weights are renormalised."""
    scale = temperature if temperature > 0 else 1.0
    average = torch.zeros(len(union))
    abstained = 0.0
    for member, member_logits, weight in zip(members, logits, weights, strict=True):
        ids = [member.text.score_id(key) for key in union]
        known = [index for index, token_id in enumerate(ids) if token_id is not None]
        if not known:
            abstained += weight
            continue
        scores = torch.full((len(union),), float("-inf"))
        scores[known] = member_logits[[ids[index] for index in known]]
        average += weight * torch.softmax(scores / scale, dim=0)
    return average / (1.0 - abstained) if abstained else average
