"""Full-vocabulary mixture decoding for members that are adapters on one base model (they share a tokenizer).

Every request becomes one row per member, all in one left-padded batch whose rows name their member's peft
adapter (`adapter_names`), so one forward pass per step serves every member of every request. The prompts
are prefilled as the runtime prefills any generation, reusing each member's computed prefixes
(`base.prefixes`, per adapter). A request's next token comes from Σ_m w_m softmax(logits_m / T): greedy
takes its argmax, sampling draws from it after the request's top-p. The chosen token is fed to each of the
request's member rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from fslm.runtime.boost.types import BoostRequest
from fslm.runtime.ensemble.types import EnsembleGeneration
from fslm.runtime.loaded import LoadedBase
from fslm.runtime.prefill import PromptPart
from fslm.runtime.prefix_plan import prefill_reusing
from fslm.runtime.prompt import encode_prompt
from fslm.runtime.sampling import row_generator, sample_from
from fslm.runtime.stops import cut_at_stop, stop_index
from fslm.runtime.types import Generation, GenerationRequest


@dataclass
class MixtureRow:
    request: BoostRequest
    prompt_text: str
    prompt_ids: list[int]
    generator: torch.Generator | None
    completion_ids: list[int] = field(default_factory=list)
    first_tokens: tuple[str, ...] = ()
    disagreements: int = 0
    finish_reason: str | None = None
    cached_prompt_tokens: int = 0  # prompt tokens every member reused from the prefix cache


def decode_mixture(
    base: LoadedBase, adapter_names: list[str], requests: list[BoostRequest]
) -> list[EnsembleGeneration]:
    """Generate every request (each with these members, `adapter_names` in member order) in one batch.

    The caller holds `base.lock`."""
    started = time.perf_counter()
    rows = [_prepare(base, request) for request in requests]
    for row in rows:
        if row.request.params.max_new_tokens == 0:
            row.finish_reason = "length"
    live = [row for row in rows if row.finish_reason is None]
    if live:
        with torch.inference_mode():
            _run(base, adapter_names, live)
    seconds = time.perf_counter() - started
    return [_result(base, row, len(adapter_names), seconds) for row in rows]


def _prepare(base: LoadedBase, request: BoostRequest) -> MixtureRow:
    single = GenerationRequest(
        model=request.members[0].model,
        prompt=request.prompt,
        system=request.system,
        chat_template=request.chat_template,
        params=request.params,
    )
    text, ids = encode_prompt(base.tokenizer, single)
    return MixtureRow(request, text, ids, row_generator(request.params))


def _templated(base: LoadedBase, row: MixtureRow) -> bool:
    return row.request.chat_template and bool(getattr(base.tokenizer, "chat_template", None))


def _run(base: LoadedBase, adapter_names: list[str], rows: list[MixtureRow]) -> None:
    members = len(adapter_names)
    parts = [PromptPart(name, row.prompt_ids) for row in rows for name in adapter_names]
    prefilled = prefill_reusing(base, parts, base.prefixes)
    for index, row in enumerate(rows):
        row.cached_prompt_tokens = min(part.cached for part in parts[index * members : (index + 1) * members])
    cache, mask, next_position = prefilled.cache, prefilled.attention_mask, prefilled.next_position
    logits = prefilled.logits
    active = list(rows)
    while True:
        logits = logits.cpu().view(len(active), members, -1)
        chosen = [_next_token(base, row, logits[index]) for index, row in enumerate(active)]
        keep = [index for index, row in enumerate(active) if not _finished(base, row)]
        if not keep:
            return
        if len(keep) < len(active):
            member_rows = torch.tensor(
                [index * members + m for index in keep for m in range(members)], device=base.device
            )
            cache.batch_select_indices(member_rows)
            mask = mask[member_rows]
            next_position = next_position[member_rows]
            active = [active[index] for index in keep]
            chosen = [chosen[index] for index in keep]
        input_ids = torch.tensor(chosen, dtype=torch.long, device=base.device).repeat_interleave(members)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        output = base.forward(
            adapter_names * len(active),
            input_ids=input_ids.unsqueeze(1),
            attention_mask=mask,
            position_ids=next_position.unsqueeze(1),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        logits = output.logits[:, -1, :].float()
        next_position = next_position + 1


def _next_token(base: LoadedBase, row: MixtureRow, logits: torch.Tensor) -> int:
    """The row's next token from its members' logits ([members, vocab]), recorded in the row."""
    params = row.request.params
    own = logits.argmax(dim=-1).tolist()
    if not row.completion_ids:
        row.first_tokens = tuple(base.tokenizer.decode([token]) for token in own)
    if len(set(own)) > 1:
        row.disagreements += 1
    scale = params.temperature if params.temperature > 0 else 1.0
    weights = torch.tensor(row.request.weights).unsqueeze(1)
    mixture = (weights * torch.softmax(logits / scale, dim=-1)).sum(dim=0)
    token = (
        int(mixture.argmax()) if row.generator is None else sample_from(mixture, params.top_p, row.generator)
    )
    row.completion_ids.append(token)
    return token


def _finished(base: LoadedBase, row: MixtureRow) -> bool:
    params = row.request.params
    if row.completion_ids[-1] in base.eos_ids:
        row.finish_reason = "eos"
    elif params.stop and stop_index(_text(base, row), params.stop) is not None:
        row.finish_reason = "stop"
    elif len(row.completion_ids) >= params.max_new_tokens:
        row.finish_reason = "length"
    return row.finish_reason is not None


def _text(base: LoadedBase, row: MixtureRow) -> str:
    ids = [token for token in row.completion_ids if token not in base.eos_ids]
    return base.tokenizer.decode(ids, skip_special_tokens=True)


def _result(base: LoadedBase, row: MixtureRow, members: int, seconds: float) -> EnsembleGeneration:
    text = cut_at_stop(_text(base, row), row.request.params.stop)
    generation = Generation(
        text=text.strip(),
        prompt_text=row.prompt_text,
        prompt_tokens=len(row.prompt_ids),
        completion_tokens=len(row.completion_ids),
        seconds=seconds,
        finish_reason=row.finish_reason or "length",
        cached_prompt_tokens=row.cached_prompt_tokens,
    )
    return EnsembleGeneration(
        generation=generation,
        first_tokens=row.first_tokens,
        disagreements=row.disagreements,
        steps=len(row.completion_ids),
        templates=("own chat template" if _templated(base, row) else "raw prompt",) * members,
    )
