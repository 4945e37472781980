"""`fslm finetune cascade`: pick a cascade stage's thresholds on dev data, for a quality to keep or a share of
items to escalate. `thresholds.py` is the search; `workflow.py` runs the steps and writes the
thresholds into the pipeline."""
