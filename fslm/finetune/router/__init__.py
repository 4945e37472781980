"""Training a Zooter router (`fslm finetune router RECIPE.yaml`): every expert answers the training queries
(`experts`), a reward scores the answers (`rewards`), the softmax of the rewards smoothed by tags is each
query's label (`labels`), and an encoder with a head learns them by KL divergence (`train`); `workflow` runs
it all and writes the checkpoint the `router` node kind reads."""
