"""Training speed and peak memory: fslm's trainer against a plain TRL SFTTrainer + peft run.

Both train the `solve` stage of pipelines/gsm8k_stack.yaml (SmolLM2-135M-Instruct, float32) on the same token
ids (the stage's rendered prompts, built by fslm, then the worked solution and EOS), with the same LoRA
(r=16, alpha=32, all linear layers, no dropout) and hyperparameters (AdamW, lr 2e-4, linear schedule, batch 8,
one epoch), loss on completion tokens only. Each runs in its own subprocess, so peak RSS is its own.
Tokens/s counts prompt and completion tokens (padding excluded) over the training loop's wall time.

Run: python bench/finetune_speed.py [--examples 64] [--repeats 2]   (needs `pip install trl`)
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import peak_rss_mib, read_jsonl, record

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / "pipelines" / "gsm8k_stack.yaml"
DATA = REPO / "finetune" / "data" / "gsm8k_solve.jsonl"
HPARAMS = {"learning_rate": 2e-4, "batch_size": 8, "r": 16, "alpha": 32, "seed": 0, "max_length": 512}


def encoded_examples(count: int):
    from transformers import AutoTokenizer

    from fslm.finetune.encode import StageEncoder
    from fslm.finetune.sources import Example
    from fslm.runtime import prepare
    from fslm.spec import load_spec

    spec = load_spec(PIPELINE)
    base_dir = prepare(spec.models["smol"].source)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    encoder = StageEncoder("solve", spec.stages["solve"], tokenizer)
    rows = read_jsonl(DATA)[:count]
    return (
        base_dir,
        tokenizer,
        [encoder.encode(Example({"input": row["question"]}, row["solution"])) for row in rows],
    )


def run_fslm(count: int, checkpointing: bool) -> dict:
    from fslm.finetune.model import load_base, with_new_adapter
    from fslm.finetune.recipe import LoraSpec, TrainSpec
    from fslm.finetune.train import Trainer

    base_dir, tokenizer, examples = encoded_examples(count)
    _, model = load_base(base_dir, "float32")
    model = with_new_adapter(
        model, LoraSpec(r=HPARAMS["r"], alpha=HPARAMS["alpha"]), HPARAMS["seed"], checkpointing
    )
    spec = TrainSpec(
        epochs=1,
        learning_rate=HPARAMS["learning_rate"],
        batch_size=HPARAMS["batch_size"],
        max_length=HPARAMS["max_length"],
        seed=HPARAMS["seed"],
        checkpoint_every=10_000,
        gradient_checkpointing=checkpointing,
    )
    trainer = Trainer(model, examples, [], spec, tokenizer.pad_token_id, eval_every=None)
    losses: list[float] = []
    started = time.perf_counter()
    progress = trainer.run(
        Path(os.environ["BENCH_TMP"]) / "checkpoint", "bench", False, lambda log: losses.append(log.loss)
    )
    seconds = time.perf_counter() - started
    return {
        "tokens": progress.tokens,
        "seconds": seconds,
        "steps": progress.step,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def run_trl(count: int, checkpointing: bool) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    base_dir, tokenizer, examples = encoded_examples(count)
    dataset = Dataset.from_list(
        [
            {
                "input_ids": example.ids,
                "completion_mask": [0] * len(example.prompt_ids) + [1] * len(example.completion_ids),
            }
            for example in examples
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="float32")
    config = SFTConfig(
        output_dir=os.environ["BENCH_TMP"],
        per_device_train_batch_size=HPARAMS["batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=HPARAMS["learning_rate"],
        lr_scheduler_type="linear",
        warmup_steps=0,
        num_train_epochs=1,
        max_length=HPARAMS["max_length"],
        completion_only_loss=True,
        seed=HPARAMS["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        gradient_checkpointing=checkpointing,
    )
    lora = LoraConfig(
        r=HPARAMS["r"],
        lora_alpha=HPARAMS["alpha"],
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.perf_counter() - self.started

    clock = Clock()
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[clock],
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "tokens": sum(len(example) for example in examples),
        "seconds": clock.seconds,
        "steps": trainer.state.global_step,
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def worker(kind: str, count: int, checkpointing: bool) -> None:
    import torch

    result = (run_fslm if kind == "fslm" else run_trl)(count, checkpointing)
    result["peak_rss_mib"] = round(peak_rss_mib())
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result))


def measure(kind: str, count: int, checkpointing: bool) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                kind,
                "--examples",
                str(count),
                *(["--checkpointing"] if checkpointing else []),
            ],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "BENCH_TMP": folder},
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def wait_for_quiet_machine(limit: float, patience_seconds: int) -> float:
    waited = 0
    while os.getloadavg()[0] > limit and waited < patience_seconds:
        time.sleep(15)
        waited += 15
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["fslm", "trl"])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-load", type=float, default=1.3, help="wait for a 1-minute load below this")
    parser.add_argument(
        "--patience", type=int, default=600, help="seconds to wait for it before running anyway"
    )
    parser.add_argument(
        "--checkpointing",
        action="store_true",
        help="gradient checkpointing in both (TRL's default); without it, in neither",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.examples, args.checkpointing)
        return
    rows = []
    for repeat in range(args.repeats):
        for kind in ("trl", "fslm"):
            load = wait_for_quiet_machine(args.max_load, args.patience)
            result = measure(kind, args.examples, args.checkpointing)
            rows.append(
                {
                    "trainer": kind,
                    "repeat": repeat + 1,
                    "load_1min": round(load, 2),
                    "threads": result["threads"],
                    "tokens_per_s": round(result["tokens"] / result["seconds"], 1),
                    "peak_rss_mib": result["peak_rss_mib"],
                    "tokens": result["tokens"],
                    "steps": result["steps"],
                    "seconds": round(result["seconds"], 1),
                    "first_loss": round(result["first_loss"], 4),
                    "last_loss": round(result["last_loss"], 4),
                }
            )
            print(rows[-1], flush=True)
    best = {
        kind: max(row["tokens_per_s"] for row in rows if row["trainer"] == kind) for kind in ("trl", "fslm")
    }
    memory = {
        kind: max(row["peak_rss_mib"] for row in rows if row["trainer"] == kind) for kind in ("trl", "fslm")
    }
    notes = (
        f"{args.examples} GSM8K worked solutions, stage `solve` of pipelines/gsm8k_stack.yaml, SmolLM2-135M "
        f"float32, LoRA r=16 all-linear, batch 8, lr 2e-4, one epoch, completion-only loss, gradient "
        f"checkpointing "
        f"{'on' if args.checkpointing else 'off'} in both. Best of "
        f"{args.repeats}: fslm {best['fslm']} vs TRL {best['trl']} tokens/s = "
        f"**{best['fslm'] / best['trl']:.2f}×**; peak RSS fslm {memory['fslm']} MiB vs TRL {memory['trl']} "
        "MiB. load_1min is the 1-minute load average when each run started (the machine is shared)."
    )
    name = "finetune_speed_checkpointing" if args.checkpointing else "finetune_speed"
    print(record(name, rows, notes))


if __name__ == "__main__":
    main()
