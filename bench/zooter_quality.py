"""Quality and cost of the shipped Zooter router (pipelines/routed_choices.yaml) on the mixed held-out set.

The set: finetune/data/zooter/bench.jsonl, 100 ARC-Challenge + 100 PIQA + 100 MMLU items that no expert was
tuned on and the router never saw (bench/zooter_data.py). Systems:
- the untuned base (SmolLM2-135M-Instruct, the experts' stage without an adapter) and each expert alone;
- router: the trained router's argmax over the experts (one expert call per item), read from each expert's own
  run on the item; the routed pipeline itself runs end to end on the first --routed-n items, and the bench
  checks that it answers exactly as the expert it chose;
- rank (Zooter's baseline): every expert answers, the answer of highest confidence (the probability the expert
  gives the option it picked) is kept: N calls per item;
- random: a uniformly random expert per item (the router node's `method: random`, seed 0): one call;
- oracle: an item counts as right when any expert gets it right: N calls, and it needs the answer.
Rank, random and oracle are computed from the experts' own runs on the same items (the same numbers their
router methods would read). Accuracy is the choice stage's `acc` (summed log-probabilities), with 95% Wilson
intervals; wins/losses pair each system with the best single expert item by item (exact McNemar p).

Speed: router time against one expert call, both at batch 1 on the first --speed-n items, in one process:
the router's forward (encoder + head) per query and one expert's scoring of that item's options.

Each system's records are cached in --cache (one JSON file per system and --n), so the systems can run in
separate processes (--systems base,arc) and the report (--report) reads them all.

Usage: python bench/zooter_quality.py [--n 300] [--systems base,arc,piqa,mmlu] [--report] [--speed-n 50]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from common import read_jsonl, record

from fslm.eval.stats import interval95, paired
from fslm.finetune.router.experts import expert_pipeline
from fslm.nodes.router.decision import random_choice
from fslm.pipeline import Pipeline
from fslm.runtime import ModelRef, Runtime
from fslm.runtime.scoring import ScoreRequest
from fslm.spec import load_spec
from fslm.store import open_store

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipelines" / "routed_choices.yaml"
ITEMS = ROOT / "finetune" / "data" / "zooter" / "bench.jsonl"


def load_items() -> list[dict]:
    return read_jsonl(ITEMS)


def system_runs(spec, runtime: Runtime, store, items: list[dict], systems: list[str], cache: Path) -> None:
    """Run each system (base, or an expert alone) on `items` unless cached; cache its choices records. A
    system cached on fewer items runs on the rest only."""
    experts = spec.stages["route"].router.experts
    base = spec.stages[experts[0]].model_copy(update={"adapter": None})
    with_base = spec.model_copy(update={"stages": {**spec.stages, "base": base}})
    for name in systems:
        path = cache / f"{name}-{len(items)}.json"
        if path.exists():
            continue
        done = {"seconds": 0.0, "records": []}
        shorter = sorted(cache.glob(f"{name}-*.json"), key=lambda file: int(file.stem.rsplit("-", 1)[1]))
        if shorter and int(shorter[-1].stem.rsplit("-", 1)[1]) < len(items):
            done = json.loads(shorter[-1].read_text())
        rest = items[len(done["records"]) :]
        inputs = [{"question": item["question"], "choices": item["choices"]} for item in rest]
        started = time.perf_counter()
        results = Pipeline(expert_pipeline(with_base, name), runtime, store).batch(inputs)
        seconds = time.perf_counter() - started
        records = done["records"] + [result.messages[-1]["choices"] for result in results]
        path.write_text(json.dumps({"seconds": done["seconds"] + seconds, "records": records}))
        print(f"{name}: {len(rest) / seconds:.2f} items/s", flush=True)


def cached(cache: Path, name: str, count: int) -> list[dict]:
    path = cache / f"{name}-{count}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run the bench with --systems {name} first")
    return json.loads(path.read_text())["records"]


def correct(records: list[dict], items: list[dict]) -> list[float]:
    return [
        float(rec["options"][rec["chosen"]] == item["gold"]) for rec, item in zip(records, items, strict=True)
    ]


def confidence(rec: dict) -> float:
    return rec["probabilities"][rec["chosen"]]


def routed_run(runtime: Runtime, store, items: list[dict]) -> tuple[list[str], list[str], list[float]]:
    """The routed pipeline end to end: per item the expert it chose, its output, the router's own seconds."""
    pipeline = Pipeline(load_spec(PIPELINE), runtime, store)
    results = pipeline.batch([{"question": item["question"], "choices": item["choices"]} for item in items])
    routers = [result.messages[-1]["router"] for result in results]
    return (
        [r["chosen"] for r in routers],
        [result.output for result in results],
        [r["seconds"] for r in routers],
    )


def router_choices(spec, items: list[dict]) -> list[int]:
    """The trained router's argmax expert per item (cost_weight 0), in batches of 32 queries."""
    import torch

    from fslm.runtime.router import RouterModel

    router, _ = RouterModel.load(spec.stages["route"].router.checkpoint)
    queries = [item["question"] for item in items]
    with torch.inference_mode():
        logits = torch.cat([router(queries[start : start + 32]) for start in range(0, len(queries), 32)])
    return logits.argmax(dim=-1).tolist()


def speed(runtime: Runtime, items: list[dict], spec, count: int) -> dict[str, float]:
    """Seconds per query at batch 1: the router's forward, and one expert's scoring of the item's options."""
    from fslm.runtime.router import RouterModel

    router, _ = RouterModel.load(spec.stages["route"].router.checkpoint)
    stage = spec.stages["arc"]
    requests = [
        ScoreRequest(
            "smol",
            f"Question: {item['question']}\nAnswer:",
            tuple(f" {o}" for o in item["choices"]),
            adapter=str(stage.adapter),
        )
        for item in items[:count]
    ]
    import torch

    with torch.inference_mode():
        router([items[0]["question"]])
        started = time.perf_counter()
        for item in items[:count]:
            router([item["question"]])
        router_seconds = (time.perf_counter() - started) / count
    runtime.serve(requests[:1])
    started = time.perf_counter()
    for request in requests:
        runtime.serve([request])
    expert_seconds = (time.perf_counter() - started) / count
    return {"router": router_seconds, "expert": expert_seconds}


def row(name: str, scores: list[float], best: list[float] | None, calls: float, note: str) -> dict:
    bounds = interval95(scores)
    comparison = paired(scores, best) if best is not None else None
    return {
        "system": name,
        "acc %": f"{100 * sum(scores) / len(scores):.1f} [{100 * bounds.low:.1f}, {100 * bounds.high:.1f}]",
        "vs best expert: wins/losses (p)": (
            f"{comparison.wins}/{comparison.losses} (p={comparison.p_value:.3f})" if comparison else ""
        ),
        "expert calls / item": f"{calls:g}",
        "note": note,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300, help="the first N bench items (N/3 of each set)")
    parser.add_argument("--systems", default="base,arc,piqa,mmlu", help="systems to run (cached ones skip)")
    parser.add_argument("--report", action="store_true", help="write the results from the cached runs")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fslm-zooter-bench")
    parser.add_argument("--routed-n", type=int, default=12, help="items the routed pipeline runs end to end")
    parser.add_argument("--speed-n", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--pipeline", type=Path, default=PIPELINE, help="to run the systems from (not --report)"
    )
    args = parser.parse_args()
    items = load_items()[: args.n]
    args.cache.mkdir(parents=True, exist_ok=True)
    systems = [name for name in args.systems.split(",") if name]
    if not args.report:
        spec = load_spec_unchecked(args.pipeline)
        with (
            tempfile.TemporaryDirectory() as folder,
            Runtime(model_refs(spec), max_batch_size=args.batch) as rt,
        ):
            system_runs(spec, rt, open_store(Path(folder) / "runs.sqlite"), items, systems, args.cache)
        return
    report(args, items)


def load_spec_unchecked(path: Path):
    """A routed pipeline without its router checkpoint's checks: the experts run before it is trained."""
    from fslm.nodes.router.spec import CHECK_CHECKPOINT

    token = CHECK_CHECKPOINT.set(False)
    try:
        return load_spec(path)
    finally:
        CHECK_CHECKPOINT.reset(token)


def model_refs(spec) -> dict[str, ModelRef]:
    return {name: ModelRef(source=model.source, dtype=model.dtype) for name, model in spec.models.items()}


def report(args: argparse.Namespace, items: list[dict]) -> None:
    spec = load_spec(PIPELINE)
    experts = spec.stages["route"].router.experts
    runs = {name: cached(args.cache, name, len(items)) for name in ["base", *experts]}
    scores = {name: correct(records, items) for name, records in runs.items()}
    best = max(experts, key=lambda name: sum(scores[name]))
    picks = router_choices(spec, items)
    chosen = [experts[pick] for pick in picks]
    routed = [scores[name][index] for index, name in enumerate(chosen)]
    with tempfile.TemporaryDirectory() as folder, Runtime(model_refs(spec), max_batch_size=args.batch) as rt:
        end_to_end, outputs, router_own = routed_run(
            rt, open_store(Path(folder) / "runs.sqlite"), items[: args.routed_n]
        )
        timing = speed(rt, items, spec, args.speed_n)
    for index, (name, output) in enumerate(zip(end_to_end, outputs, strict=True)):
        picked = runs[name][index]
        assert name == chosen[index] and output == picked["options"][picked["chosen"]], "pipeline != bench"
    rank = [
        scores[max(experts, key=lambda name: confidence(runs[name][index]))][index]
        for index in range(len(items))
    ]
    random_pick = [
        scores[experts[random_choice(len(experts), 0, item["question"])]][index]
        for index, item in enumerate(items)
    ]
    oracle = [max(scores[name][index] for name in experts) for index in range(len(items))]
    n = len(experts)
    ratio = timing["router"] / timing["expert"]
    rows = [row("untuned base (SmolLM2-135M-Instruct)", scores["base"], scores[best], 1, "")]
    rows += [
        row(f"expert {name} alone", scores[name], scores[best], 1, "best" if name == best else "")
        for name in experts
    ]
    rows += [
        row("router (learned)", routed, scores[best], 1, "+ 1 encoder pass per item"),
        row("rank (highest confidence)", rank, scores[best], n, ""),
        row("random expert", random_pick, scores[best], 1, "seed 0"),
        row("oracle (best expert per item)", oracle, scores[best], n, "needs the answer"),
    ]
    domains = sorted({item["domain"] for item in items})
    by_domain = {
        name: {
            domain: round(
                100
                * sum(v for v, item in zip(values, items, strict=True) if item["domain"] == domain)
                / sum(1 for item in items if item["domain"] == domain),
                1,
            )
            for domain in domains
        }
        for name, values in {
            **scores,
            "router": routed,
            "rank": rank,
            "random": random_pick,
            "oracle": oracle,
        }.items()
    }
    routed_share = {name: chosen.count(name) for name in experts}
    median_own = 1000 * sorted(router_own)[len(router_own) // 2]
    about = (
        f"Items: the first {len(items)} of finetune/data/zooter/bench.jsonl ({len(items) // 3} each of "
        "ARC-Challenge, PIQA and MMLU), never used to tune an expert or to train or pick the router's "
        "epoch. acc = the choice stage's pick (summed log-probabilities) is the gold option; "
        "[95% Wilson interval]. "
        f"Wins/losses: item by item against the best single expert ({best}), exact McNemar p. "
        f"Float32 on the CPU, batch {args.batch}. The routed pipeline ran end to end on the first "
        f"{args.routed_n} items and answered each exactly as the expert it chose."
    )
    shares = (
        f"Router's choices: {json.dumps(routed_share)}. Accuracy % per data set: {json.dumps(by_domain)}."
    )
    timed = (
        f"Speed at batch 1, first {args.speed_n} items, one process: router forward "
        f"{1000 * timing['router']:.1f} ms per query, one expert call (scoring the options, adapter "
        f"arc) {1000 * timing['expert']:.1f} ms: router time = {100 * ratio:.1f}% of one expert call. "
        "The router's own time recorded per item in the batched run (queueing included): median "
        f"{median_own:.1f} ms."
    )
    command = (
        f"Commands: python bench/zooter_quality.py --n {args.n} --systems base,arc,piqa,mmlu (any split "
        f"over processes), then --n {args.n} --report --routed-n {args.routed_n} --speed-n {args.speed_n}"
    )
    notes = f"{about}\n\n{shares}\n\n{timed}\n\n{command}"
    path = record("zooter_quality", rows, notes)
    print(path.read_text())
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
