"""Ensemble decoding (UniTE, Yao et al. 2024, *Determine-Then-Ensemble*): several models, one text.

At each step every member's top-k tokens are matched by the bytes they stand for; their union goes to the
vote (by default UniTE's: the weighted average of each member's softmax over the union), which picks the
next token. The chosen text is appended for every member in its own tokens, each member with its own KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fslm.errors import FslmError
from fslm.runtime.ensemble.alignment import EOS, Change, IncrementalTokens, TokenKey, continues_utf8, key_text
from fslm.runtime.ensemble.members import LoadedMember, MemberBatch
from fslm.runtime.ensemble.types import EnsembleGeneration, EnsembleRequest
from fslm.runtime.ensemble.vote import Ballot, Vote, unite_vote
from fslm.runtime.prompt import encode_prompt
from fslm.runtime.sampling import row_generator, sample_from
from fslm.runtime.stops import cut_at_stop, stop_index
from fslm.runtime.types import Generation, GenerationRequest


@dataclass
class EnsembleRow:
    request: EnsembleRequest
    prompt_ids: list[list[int]]  # per member
    prompt_text: str  # the primary's
    templates: tuple[str, ...]
    tracks: list[IncrementalTokens]
    generator: torch.Generator | None
    completion: bytearray = field(default_factory=bytearray)
    steps: int = 0
    disagreements: int = 0
    first_tokens: tuple[str, ...] = ()
    finish_reason: str | None = None
    cached_prompt_tokens: int = 0  # the primary's prompt tokens reused from its prefix cache


StepObserver = Callable[[list[MemberBatch], list["EnsembleRow"]], None]


def decode_ensemble(
    members: list[LoadedMember],
    requests: list[EnsembleRequest],
    on_step: StepObserver | None = None,
    *,
    vote: Vote = unite_vote,
) -> list[EnsembleGeneration]:
    """Generate every request to its end in one batch; each request lists these same members.

    `vote` picks each next token (see `Vote`). `on_step` (for inspection and tests) sees every member's state
    after each step's tokens are fed."""
    started = time.perf_counter()
    rows = [_prepare(members, request) for request in requests]
    live = [row for row in rows if row.request.params.max_new_tokens > 0]
    for row in rows:
        if row.request.params.max_new_tokens == 0:
            row.finish_reason = "length"
    if live:
        with torch.inference_mode():
            _run(members, live, on_step, vote)
    seconds = time.perf_counter() - started
    return [_result(row, seconds) for row in rows]


def _prepare(members: list[LoadedMember], request: EnsembleRequest) -> EnsembleRow:
    prompts = []
    for member, ref in zip(members, request.members, strict=True):
        single = GenerationRequest(
            model=ref.model,
            prompt=request.prompt,
            adapter=ref.adapter,
            system=request.system,
            chat_template=request.chat_template,
            params=request.params,
        )
        prompts.append((encode_prompt(member.base.tokenizer, single), _has_template(member)))
    if request.chat_template and len({has for _, has in prompts}) > 1:
        having = [m.label for m, (_, has) in zip(members, prompts, strict=True) if has]
        lacking = [m.label for m, (_, has) in zip(members, prompts, strict=True) if not has]
        raise FslmError(
            f"With chat_template on, ensemble members {', '.join(having)} would get their chat template but "
            f"{', '.join(lacking)} would get the raw prompt (its tokenizer has no chat template), so the "
            "members would not answer the same thing. Set chat_template: false on the stage, or use members "
            "that all have a chat template (each member then uses its own)."
        )
    templated = request.chat_template and prompts[0][1]
    return EnsembleRow(
        request=request,
        prompt_ids=[ids for (_, ids), _ in prompts],
        prompt_text=prompts[request.primary][0][0],
        templates=tuple("own chat template" if templated else "raw prompt" for _ in members),
        tracks=[IncrementalTokens(member.text) for member in members],
        generator=row_generator(request.params),
    )


def _has_template(member: LoadedMember) -> bool:
    return bool(getattr(member.base.tokenizer, "chat_template", None))


def _run(
    members: list[LoadedMember], rows: list[EnsembleRow], on_step: StepObserver | None, vote: Vote
) -> None:
    batches = [
        MemberBatch(member, [row.prompt_ids[index] for row in rows]) for index, member in enumerate(members)
    ]
    for position, row in enumerate(rows):
        row.cached_prompt_tokens = batches[row.request.primary].cached_tokens[position]
    active = list(rows)
    while True:
        top_k = max(row.request.top_k for row in active)
        tops = [batch.logits.topk(min(top_k, batch.logits.shape[1])).indices.tolist() for batch in batches]
        changes: list[list[Change | None]] = [[] for _ in members]
        keep = []
        for position, row in enumerate(active):
            row_logits = [batch.logits[position] for batch in batches]
            row_tops = [top[position][: row.request.top_k] for top in tops]
            chosen = _choose(members, row, row_logits, row_tops, vote)
            for index, change in enumerate(_append(members, row, chosen, row_tops)):
                changes[index].append(change)
            if not _finished(row, chosen):
                keep.append(position)
        if not keep:
            return
        for batch, member_changes in zip(batches, changes, strict=True):
            if len(keep) < len(active):
                batch.keep_rows(keep)
                member_changes = [member_changes[position] for position in keep]
            batch.feed(member_changes)
        active = [active[position] for position in keep]
        if on_step is not None:
            on_step(batches, active)


def _choose(
    members: list[LoadedMember],
    row: EnsembleRow,
    logits: list[torch.Tensor],
    tops: list[list[int]],
    vote: Vote,
) -> TokenKey:
    top_keys = [
        [member.text.keys[token_id] for token_id in top] for member, top in zip(members, tops, strict=True)
    ]
    firsts = [keys[0] for keys in top_keys]
    if row.steps == 0:
        row.first_tokens = tuple(key_text(key) for key in firsts)
    agree = all(key == firsts[0] for key in firsts)
    if not agree:
        row.disagreements += 1
    params = row.request.params
    if agree and params.temperature == 0 and continues_utf8(row.completion, firsts[0]):
        # Every member's own argmax is this token, so a vote that respects a unanimous choice picks it too.
        return firsts[0]
    primary = row.request.primary
    ordered = [top_keys[primary], *(keys for index, keys in enumerate(top_keys) if index != primary)]
    candidates = list(dict.fromkeys(key for keys in ordered for key in keys))
    # Bytes that cannot continue the text as UTF-8 would leave text no member's tokenizer can take in.
    union = [key for key in candidates if continues_utf8(row.completion, key)] or candidates
    ballot = Ballot(members, logits, top_keys, union, row.request.normalised_weights, params.temperature)
    distribution = vote(ballot)
    if params.temperature == 0:
        return union[int(distribution.argmax())]
    return union[sample_from(distribution, params.top_p, row.generator)]


def _append(
    members: list[LoadedMember], row: EnsembleRow, chosen: TokenKey, tops: list[list[int]]
) -> list[Change | None]:
    """Append the chosen token for every member; None for a member with nothing to run.

    A member whose own top-k holds the chosen token appends that very token (a text can have several, e.g. a
    piece and its byte-fallback spelling); else its vocabulary's token for the text, else it re-tokenizes."""
    row.steps += 1
    if chosen == EOS:
        return [None] * len(members)
    if isinstance(chosen, bytes):
        row.completion += chosen
    changes: list[Change | None] = []
    for member, track, top in zip(members, row.tracks, tops, strict=True):
        proposed = (token_id for token_id in top if member.text.keys[token_id] == chosen)
        own = next(proposed, member.text.ids.get(chosen))
        if own is not None:
            changes.append(track.append_token(own))
        elif isinstance(chosen, bytes):
            changes.append(track.append_bytes(chosen))
        else:
            changes.append(None)  # a special token this member does not have stands for no text
    return changes


def _finished(row: EnsembleRow, chosen: TokenKey) -> bool:
    params = row.request.params
    if chosen == EOS:
        row.finish_reason = "eos"
    elif params.stop and stop_index(_completion_text(row), params.stop) is not None:
        row.finish_reason = "stop"
    elif row.steps >= params.max_new_tokens:
        row.finish_reason = "length"
    return row.finish_reason is not None


def _completion_text(row: EnsembleRow) -> str:
    return bytes(row.completion).decode(errors="replace")


def _result(row: EnsembleRow, seconds: float) -> EnsembleGeneration:
    text = cut_at_stop(_completion_text(row), row.request.params.stop)
    primary = row.request.primary
    generation = Generation(
        text=text.strip(),
        prompt_text=row.prompt_text,
        prompt_tokens=len(row.prompt_ids[primary]),
        # Counted like a single model's decode: the primary's tokens of the text, plus its EOS token.
        completion_tokens=len(row.tracks[primary].ids) + (row.finish_reason == "eos"),
        seconds=seconds,
        finish_reason=row.finish_reason or "length",
        cached_prompt_tokens=row.cached_prompt_tokens,
    )
    return EnsembleGeneration(
        generation=generation,
        first_tokens=row.first_tokens,
        disagreements=row.disagreements,
        steps=row.steps,
        templates=row.templates,
    )
