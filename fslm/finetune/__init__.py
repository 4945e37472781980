"""Fine-tuning one stage of a pipeline: recipes, training examples, the training loop, and attaching the
result.

Training renders each prompt with the stage's own template and the runtime's chat template, so the ids a
stage is trained on are the ids it sees at inference.
"""

from fslm.finetune.loading import load_recipe, shorthand_recipe
from fslm.finetune.recipe import Recipe
from fslm.finetune.workflow import Callbacks, FinetuneResult, finetune

__all__ = ["Callbacks", "FinetuneResult", "Recipe", "finetune", "load_recipe", "shorthand_recipe"]
