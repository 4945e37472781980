"""`fslm finetune router`: run every expert on the training queries, reward their answers, label, train the
router, save it with the names and fingerprints of the experts it was trained for."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fslm.errors import FslmError
from fslm.files import (
    check_can_create,
    check_path_name,
    replace_directory,
    staging_directory,
    write_text_atomically,
)
from fslm.finetune.router.data import load_queries
from fslm.finetune.router.experts import ExpertAnswers, run_experts
from fslm.finetune.router.labels import entropy, flat_items, softmax_labels, tag_enhanced
from fslm.finetune.router.recipe import RouterRecipe
from fslm.finetune.router.rewards import Answer, make_rewarder
from fslm.finetune.router.train import EpochLog, split, train_router
from fslm.nodes.router.spec import CHECK_CHECKPOINT, RouterStageSpec
from fslm.runtime.router.checkpoint import CONFIG_FILE, WEIGHTS_FILE, ExpertEntry, RouterConfig
from fslm.spec import PipelineSpec, load_spec


@dataclass
class RouterCallbacks:
    on_status: Callable[[str], None] = lambda message: None
    on_expert: Callable[[str, int, int], None] = lambda expert, done, total: None
    on_epoch: Callable[[EpochLog, int], None] = lambda log, epochs: None


@dataclass(frozen=True)
class RouterSummary:
    output: Path
    queries: int
    dropped: int
    flat: int
    label_entropy: float  # mean over queries, nats
    max_entropy: float  # log(experts): the entropy of a uniform label
    held_out: int
    best_epoch: int
    agreement: float  # held-out: the router's argmax is a best-rewarded expert
    routed_reward: float  # held-out: mean reward of the router's choice
    expert_rewards: dict[str, float] = field(default_factory=dict)  # held-out: each expert alone
    oracle_reward: float = 0.0  # held-out: the best expert per query


def router_stage(spec: PipelineSpec, stage: str) -> RouterStageSpec:
    if stage not in spec.stages:
        raise FslmError(f"pipeline {spec.name!r} has no stage {stage!r}; stages: {', '.join(spec.stages)}")
    router = spec.stages[stage]
    if not isinstance(router, RouterStageSpec):
        raise FslmError(f"stage {stage!r} of {spec.path} is a {router.kind!r} stage, not a router")
    return router


def train_router_recipe(recipe: RouterRecipe, callbacks: RouterCallbacks | None = None) -> RouterSummary:
    callbacks = callbacks or RouterCallbacks()
    token = CHECK_CHECKPOINT.set(False)  # the checkpoint this run writes may be missing or outdated
    try:
        spec = load_spec(recipe.target.pipeline)
    finally:
        CHECK_CHECKPOINT.reset(token)
    router = router_stage(spec, recipe.target.stage)
    _check_output(recipe.output)
    rewarder = make_rewarder(recipe.reward)
    queries = load_queries(recipe.data, spec, recipe.target.stage, recipe.reward.metric is not None)
    if len(queries.items) < 2:
        raise FslmError("router training needs at least 2 queries (one to train on, one held out)")
    from fslm.runtime.router.model import RouterModel  # torch: only once the inputs are known to be good

    encoder = RouterModel.from_encoder(
        recipe.encoder.name, len(router.router.experts), recipe.encoder.max_length, recipe.train.seed
    )
    experts = router.router.experts
    total = len(queries.items)
    callbacks.on_status(f"running {len(experts)} experts on {total} queries")
    answers = run_experts(
        spec,
        experts,
        [query.input for query in queries.items],
        recipe.store,
        recipe.batch_size,
        lambda expert, done: callbacks.on_expert(expert, done, total),
    )
    rewards = _reward_table(rewarder, queries.items, answers)
    flat = flat_items(rewards)
    labels = softmax_labels(rewards, recipe.labels.temperature)
    labels = tag_enhanced(labels, [query.tags for query in queries.items], recipe.labels.beta)
    parts = split(total, recipe.train.held_out, recipe.train.seed)
    trained = train_router(
        encoder,
        [query.text for query in queries.items],
        labels,
        rewards,
        parts,
        recipe.train,
        recipe.encoder.train,
        lambda log: callbacks.on_epoch(log, recipe.train.epochs),
    )
    held = parts[1]
    summary = RouterSummary(
        output=recipe.output,
        queries=total,
        dropped=queries.dropped,
        flat=flat,
        label_entropy=sum(entropy(label) for label in labels) / total,
        max_entropy=entropy([1 / len(experts)] * len(experts)),
        held_out=len(held),
        best_epoch=trained.best.epoch,
        agreement=trained.best.agreement,
        routed_reward=sum(rewards[index][pick] for index, pick in zip(held, trained.choices, strict=True))
        / len(held),
        expert_rewards={
            name: sum(rewards[index][position] for index in held) / len(held)
            for position, name in enumerate(experts)
        },
        oracle_reward=sum(max(rewards[index]) for index in held) / len(held),
    )
    config = RouterConfig(
        encoder=recipe.encoder.name,
        encoder_trained=recipe.encoder.train,
        max_length=recipe.encoder.max_length,
        experts=[
            ExpertEntry(name=a.name, fingerprint=a.fingerprint, seconds_per_call=a.seconds_per_call)
            for a in answers
        ],
        training={
            **{key: value for key, value in asdict(summary).items() if key != "output"},
            "recipe": recipe.model_dump(mode="json", exclude={"target", "data", "store", "output"}),
            "epochs": [asdict(log) for log in trained.epochs],
        },
    )
    staged = staging_directory(recipe.output)
    encoder.save_weights(staged / WEIGHTS_FILE, recipe.encoder.train)
    write_text_atomically(staged / CONFIG_FILE, json.dumps(config.model_dump(mode="json"), indent=1) + "\n")
    replace_directory(recipe.output)
    return summary


def _check_output(output: Path) -> None:
    """The output may be replaced: missing, empty, or an earlier router checkpoint."""
    check_path_name(output, "output")
    if output.exists() and (
        not output.is_dir() or (any(output.iterdir()) and not (output / CONFIG_FILE).is_file())
    ):
        raise FslmError(
            f"the output {output} exists and is not a router checkpoint; choose another directory "
            "(fslm replaces only an earlier router there)"
        )
    check_can_create(output / CONFIG_FILE, "output")


def _reward_table(rewarder, queries, answers: list[ExpertAnswers]) -> list[list[float]]:
    """rewards[query][expert]."""
    columns = [
        rewarder(
            [
                Answer(query.text, message, query.reference)
                for query, message in zip(queries, expert.messages, strict=True)
            ]
        )
        for expert in answers
    ]
    return [list(row) for row in zip(*columns, strict=True)]
