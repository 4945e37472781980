"""UniTE decoding (Yao et al. 2024, *Determine-Then-Ensemble*): several models, one text, top-k union voting.

At each step every member scores the union of all members' top-k tokens (matched by the bytes they stand
for), its scores are softmaxed over that union, and the weighted average picks the next token. The chosen
text is appended for every member in its own tokens, each member with its own KV cache.
"""

from __future__ import annotations

import codecs
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from fslm.errors import FslmError
from fslm.runtime.ensemble_types import EnsembleGeneration, EnsembleMember, EnsembleRequest
from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prompt import render_prompt
from fslm.runtime.retokenize import Change, IncrementalTokens
from fslm.runtime.sampling import row_generator
from fslm.runtime.token_text import EOS, Special, TokenKey, TokenText, split_incomplete_utf8
from fslm.runtime.types import Generation, GenerationRequest

_token_texts: weakref.WeakKeyDictionary[LoadedBase, TokenText] = weakref.WeakKeyDictionary()


def token_text_for(base: LoadedBase) -> TokenText:
    """The base's TokenText, built once (indexing Gemma's 262k vocabulary takes a moment)."""
    with base.lock:
        text = _token_texts.get(base)
        if text is None:
            text = TokenText(base.tokenizer, base.eos_ids, str(base.key.path))
            _token_texts[base] = text
        return text


@dataclass(frozen=True)
class UniteMember:
    base: LoadedBase
    adapter_name: str
    text: TokenText
    label: str


def key_text(key: TokenKey) -> str:
    """A key as readable text for the run record."""
    if key == EOS:
        return "<eos>"
    if isinstance(key, Special):
        return key.content
    return key.decode(errors="replace")


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


StepObserver = Callable[[list["MemberBatch"], list["EnsembleRow"]], None]


def decode_ensemble(
    members: list[UniteMember], requests: list[EnsembleRequest], on_step: StepObserver | None = None
) -> list[EnsembleGeneration]:
    """Generate every request to its end in one batch; each request lists these same members.

    `on_step` (for inspection and tests) sees every member's state after each step's tokens are fed."""
    started = time.perf_counter()
    rows = [_prepare(members, request) for request in requests]
    live = [row for row in rows if row.request.params.max_new_tokens > 0]
    for row in rows:
        if row.request.params.max_new_tokens == 0:
            row.finish_reason = "length"
    if live:
        with torch.inference_mode():
            _run(members, live, on_step)
    seconds = time.perf_counter() - started
    return [_result(row, seconds) for row in rows]


def _prepare(members: list[UniteMember], request: EnsembleRequest) -> EnsembleRow:
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
        prompts.append((render_prompt(member.base.tokenizer, single), _has_template(member)))
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


def _has_template(member: UniteMember) -> bool:
    return bool(getattr(member.base.tokenizer, "chat_template", None))


class MemberBatch:
    """One member's side of the batch: its KV cache, attention mask and the cache column of each live token.

    Rows re-tokenize their tails by different amounts, so a shared cache cannot be cropped per row; retracted
    tokens are masked out instead (a masked key has exactly zero attention weight) and positions count only
    live tokens, so each row sees what a fresh encoding of its tokens would.
    """

    def __init__(self, member: UniteMember, prompt_ids: list[list[int]]) -> None:
        self.member = member
        self.cache = DynamicCache(config=member.base.model.config)
        self.prompt_lengths = [len(ids) for ids in prompt_ids]
        width = max(self.prompt_lengths)
        self.mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        self.columns = [list(range(width - len(ids), width)) for ids in prompt_ids]
        input_ids = torch.full((len(prompt_ids), width), member.base.pad_id, dtype=torch.long)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            self.mask[row, width - len(ids) :] = 1
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.logits = self._forward(input_ids, positions)

    def _forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        base = self.member.base
        with base.lock:
            output = base.forward(
                [self.member.adapter_name] * input_ids.shape[0],
                input_ids=input_ids,
                attention_mask=self.mask,
                position_ids=positions,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return output.logits[:, -1, :].float()

    def feed(self, changes: list[Change | None]) -> None:
        """Apply each row's change: mask its retracted tokens, then run its new tokens (left-padded)."""
        for row, change in enumerate(changes):
            if change is None:
                continue
            live = len(self.columns[row]) - self.prompt_lengths[row]
            for _ in range(live - change.keep):
                self.mask[row, self.columns[row].pop()] = 0
        counts = [len(change.added) if change else 0 for change in changes]
        width = max(counts)
        if width == 0:
            return
        rows = len(changes)
        start = self.mask.shape[1]
        input_ids = torch.full((rows, width), self.member.base.pad_id, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        new_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, (change, count) in enumerate(zip(changes, counts, strict=True)):
            if not count or change is None:
                continue
            offset = width - count
            first_position = len(self.columns[row])
            input_ids[row, offset:] = torch.tensor(change.added)
            positions[row, offset:] = torch.arange(first_position, first_position + count)
            new_mask[row, offset:] = 1
            self.columns[row].extend(range(start + offset, start + width))
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        logits = self._forward(input_ids, positions)
        fed = torch.tensor([count > 0 for count in counts])
        # A row with nothing new (its text is waiting for the rest of a character) keeps its logits.
        self.logits = torch.where(fed.unsqueeze(1), logits, self.logits)

    def keep_rows(self, keep: list[int]) -> None:
        index = torch.tensor(keep)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.logits = self.logits[index]
        self.columns = [self.columns[row] for row in keep]
        self.prompt_lengths = [self.prompt_lengths[row] for row in keep]


def _run(members: list[UniteMember], rows: list[EnsembleRow], on_step: StepObserver | None) -> None:
    batches = [
        MemberBatch(member, [row.prompt_ids[index] for row in rows]) for index, member in enumerate(members)
    ]
    active = list(rows)
    while True:
        top_k = max(row.request.top_k for row in active)
        tops = [batch.logits.topk(min(top_k, batch.logits.shape[1])).indices.tolist() for batch in batches]
        changes: list[list[Change | None]] = [[] for _ in members]
        keep = []
        for position, row in enumerate(active):
            row_logits = [batch.logits[position] for batch in batches]
            row_tops = [top[position][: row.request.top_k] for top in tops]
            chosen = _choose(members, row, row_logits, row_tops)
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
    members: list[UniteMember], row: EnsembleRow, logits: list[torch.Tensor], tops: list[list[int]]
) -> TokenKey:
    top_keys = [[member.text.keys[token_id] for token_id in top] for member, top in zip(members, tops, strict=True)]
    firsts = [keys[0] for keys in top_keys]
    if row.steps == 0:
        row.first_tokens = tuple(key_text(key) for key in firsts)
    agree = all(key == firsts[0] for key in firsts)
    if not agree:
        row.disagreements += 1
    params = row.request.params
    if agree and params.temperature == 0 and continues_utf8(row.completion, firsts[0]):
        # Every member's own argmax is this token, so it is also the argmax of their average over any union.
        return firsts[0]
    primary = row.request.primary
    ordered = [top_keys[primary], *(keys for index, keys in enumerate(top_keys) if index != primary)]
    candidates = list(dict.fromkeys(key for keys in ordered for key in keys))
    # Bytes that cannot continue the text as UTF-8 would leave text no member's tokenizer can take in.
    union = [key for key in candidates if continues_utf8(row.completion, key)] or candidates
    average = union_average(members, logits, union, row.request.normalised_weights, params.temperature)
    if params.temperature == 0:
        return union[int(average.argmax())]
    return union[_sample(average, params.top_p, row.generator)]


def continues_utf8(text: bytearray, key: TokenKey) -> bool:
    """Whether `text` followed by `key` is still UTF-8 (possibly waiting for the rest of a character)."""
    if not isinstance(key, bytes):
        return True
    _, incomplete = split_incomplete_utf8(bytes(text[-3:]))
    try:
        codecs.getincrementaldecoder("utf-8")().decode(incomplete + key, final=False)
    except UnicodeDecodeError:
        return False
    return True


def union_average(
    members: list[UniteMember],
    logits: list[torch.Tensor],
    union: list[TokenKey],
    weights: tuple[float, ...],
    temperature: float,
) -> torch.Tensor:
    """The weighted average of each member's softmax over `union` (at `temperature`; 0 counts as 1)."""
    scale = temperature if temperature > 0 else 1.0
    average = torch.zeros(len(union))
    for member, member_logits, weight in zip(members, logits, weights, strict=True):
        ids = [member.text.score_id(key) for key in union]
        scores = torch.full((len(union),), float("-inf"))
        known = [index for index, token_id in enumerate(ids) if token_id is not None]
        scores[known] = member_logits[[ids[index] for index in known]]
        average += weight * torch.softmax(scores / scale, dim=0)
    return average


def _sample(probs: torch.Tensor, top_p: float, generator: torch.Generator | None) -> int:
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _append(
    members: list[UniteMember], row: EnsembleRow, chosen: TokenKey, tops: list[list[int]]
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
    elif params.stop and _stop_index(_completion_text(row), params.stop) is not None:
        row.finish_reason = "stop"
    elif row.steps >= params.max_new_tokens:
        row.finish_reason = "length"
    return row.finish_reason is not None


def _completion_text(row: EnsembleRow) -> str:
    return bytes(row.completion).decode(errors="replace")


def _stop_index(text: str, stops: tuple[str, ...]) -> int | None:
    found = [index for stop in stops if (index := text.find(stop)) >= 0]
    return min(found) if found else None


def _result(row: EnsembleRow, seconds: float) -> EnsembleGeneration:
    text = _completion_text(row)
    cut = _stop_index(text, row.request.params.stop)
    if cut is not None:
        text = text[:cut]
    primary = row.request.primary
    generation = Generation(
        text=text.strip(),
        prompt_text=row.prompt_text,
        prompt_tokens=len(row.prompt_ids[primary]),
        # Counted like a single model's decode: the primary's tokens of the text, plus its EOS token.
        completion_tokens=len(row.tracks[primary].ids) + (row.finish_reason == "eos"),
        seconds=seconds,
        finish_reason=row.finish_reason or "length",
    )
    return EnsembleGeneration(
        generation=generation,
        first_tokens=row.first_tokens,
        disagreements=row.disagreements,
        steps=row.steps,
        templates=row.templates,
    )


def serve_ensemble(
    base_for: Callable[[str], LoadedBase], requests: Sequence[EnsembleRequest], max_batch_size: int
) -> list[EnsembleGeneration | BaseException]:
    """Serve requests now: those with the same members run together, in batches of at most `max_batch_size`.

    A fault of one member set (a member that cannot load, mismatched templates) fails only its own requests."""
    groups: dict[tuple[EnsembleMember, ...], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.members, []).append(index)
    outcomes: dict[int, EnsembleGeneration | BaseException] = {}
    for refs, indices in groups.items():
        try:
            members = [_load_member(base_for, ref) for ref in refs]
            for start in range(0, len(indices), max_batch_size):
                chunk = indices[start : start + max_batch_size]
                for index, result in zip(chunk, decode_ensemble(members, [requests[i] for i in chunk]), strict=True):
                    outcomes[index] = result
        except FslmError as error:
            outcomes.update({index: error for index in indices if index not in outcomes})
    return [outcomes[index] for index in range(len(requests))]


def _load_member(base_for: Callable[[str], LoadedBase], ref: EnsembleMember) -> UniteMember:
    try:
        base = base_for(ref.model)
        return UniteMember(base, base.adapter_name(ref.adapter), token_text_for(base), ref.label)
    except FslmError as error:
        raise FslmError(f"Ensemble member {ref.label!r} could not be loaded: {error}") from error
