"""Easy and hard examples for weak-to-strong training: by a field of the data, or by the weak base model's
loss on the gold answer (the lowest `easy_fraction` are easy)."""

from __future__ import annotations

from fslm.data_files import read_records
from fslm.errors import FslmError
from fslm.finetune.boost.measure import token_results
from fslm.finetune.boost.members import StageModel
from fslm.finetune.boost.recipe import W2SRecipe
from fslm.finetune.boost.task import BoostExample, encode_gold
from fslm.finetune.model import with_new_adapter
from fslm.finetune.recipe import LoraSpec


def easy_and_hard(
    recipe: W2SRecipe, weak: StageModel, examples: list[BoostExample]
) -> tuple[list[int], list[int]]:
    """The indices of the easy and of the hard examples; FslmError when either part is empty."""
    split = recipe.split
    if split.field is not None:
        records = read_records(recipe.weak.data.path, recipe.weak.data.split)
        missing = next((n for n, record in enumerate(records, 1) if split.field not in record), None)
        if missing is not None:
            raise FslmError(
                f"{recipe.weak.data.path}: record {missing} has no field {split.field!r} to split by"
            )
        is_easy = [str(record[split.field]) in split.easy for record in records]
    else:
        losses = weak_losses(weak, examples)
        order = sorted(range(len(examples)), key=lambda index: losses[index])
        cut = round(len(examples) * split.easy_fraction)
        chosen = set(order[:cut])
        is_easy = [index in chosen for index in range(len(examples))]
    easy = [index for index, flag in enumerate(is_easy) if flag]
    hard = [index for index, flag in enumerate(is_easy) if not flag]
    for name, part in (("easy", easy), ("hard", hard)):
        if not part:
            by = f"field {split.field!r} (easy: {', '.join(split.easy)})" if split.field else "weak loss"
            raise FslmError(
                f"the {name} split is empty: splitting {len(examples)} examples by {by} left none"
            )
    return easy, hard


def weak_losses(weak: StageModel, examples: list[BoostExample]) -> list[float]:
    """Each example's mean loss per gold answer token under the weak base model (a fresh LoRA adapter starts
    as the identity, so the base is measured as is)."""
    model = with_new_adapter(weak.base, LoraSpec(r=1), seed=0)
    results = token_results(model, encode_gold(weak.encoder, examples), 16, weak.pad_id)
    weak.release(model)
    return [-result.logprob / len(result.hits) for result in results]
