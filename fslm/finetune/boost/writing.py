"""A text stage's greedy answers through the runtime, batched: written with one adapter on the stage's base
(as a plain stage with that adapter writes), or with the α-weighted token-level mixture of several adapters
(as a boost stage writes: `fslm.runtime.boost`). Decoding is greedy whatever the stage's temperature; its
`max_new_tokens` and `stop` apply."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from fslm.finetune.boost.task import BoostExample
from fslm.nodes.prompt import compile_prompt, render_prompt
from fslm.nodes.stage.node import generation_params, stage_request
from fslm.nodes.stage.spec import StageSpec
from fslm.runtime import GenerationRequest, ModelRef, Runtime
from fslm.runtime.boost import BoostRequest
from fslm.runtime.ensemble import EnsembleMember
from fslm.spec import PipelineSpec


class StageWriter:
    """One text stage of a pipeline, on a runtime that loads its base model once; close it (or use `with`)
    to free the model."""

    def __init__(self, spec: PipelineSpec, stage_name: str) -> None:
        stage = spec.stages[stage_name]
        assert isinstance(stage, StageSpec)  # a tunable text stage
        model = spec.models[stage.model]
        self.name = stage_name
        self.stage = stage
        self.template = compile_prompt(stage)
        self.params = dataclasses.replace(generation_params(stage.generation), temperature=0.0)
        self.runtime = Runtime(
            {stage.model: ModelRef(model.source, model.dtype, model.revision, model.device)}
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.runtime.close()

    def alone(self, adapter: Path, examples: Sequence[BoostExample]) -> list[str]:
        """Each example's answer from the stage's base with `adapter`."""
        requests = [
            dataclasses.replace(request, adapter=str(adapter)) for request in self._requests(examples)
        ]
        return [generation.text for generation in self.runtime.generate(requests)]

    def mixture(
        self, adapters: Sequence[Path], alphas: Sequence[float], examples: Sequence[BoostExample]
    ) -> list[str]:
        """Each example's answer from the α-weighted mixture of the adapters' next-token distributions."""
        members = tuple(EnsembleMember(self.stage.model, str(adapter)) for adapter in adapters)
        requests = [
            BoostRequest(
                members=members,
                prompt=request.prompt,
                alphas=tuple(alphas),
                system=request.system,
                chat_template=request.chat_template,
                params=request.params,
            )
            for request in self._requests(examples)
        ]
        return [result.generation.text for result in self.runtime.serve(requests)]

    def _requests(self, examples: Sequence[BoostExample]) -> list[GenerationRequest]:
        return [
            dataclasses.replace(
                stage_request(
                    self.stage, render_prompt(self.name, self.stage, self.template, item.example.variables)
                ),
                params=self.params,
            )
            for item in examples
        ]
