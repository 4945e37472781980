"""Cost-aware routing (`cost_weight`) of the shipped Zooter router on the 300 held-out bench items: the
quality-vs-cost curve against query-blind random routing at the same cost, and the area between them.

Costs: the three experts are adapters of one base model, so their real cost per call is the same (the
seconds the checkpoint measured differ only by the machine's load when it timed them). The bench therefore
DECLARES distinct costs (--costs, default arc=1, mmlu=2, piqa=4: the best expert alone is the dearest) as if
each expert ran on a base model of a different size; it says so in its results, and also reports the area
under every other assignment of the same costs to the experts and under the measured seconds per call.

Nothing runs a model but the router's encoder, once per item: each expert's per-item correctness comes from
bench/results/zooter_items.jsonl (bench/zooter_items.py), the router's distribution per item from one batched
pass, and each sweep point is the node's own decision rule (`fslm.nodes.router.decision.learned_choice`) on
those distributions.

Definitions (experts k = 1..N with cost c_k and accuracy a_k alone on the items; c_min = the cheapest cost):
- router curve R(c): for each cost_weight w of the grid, the point (mean cost of the chosen experts,
  accuracy); between points, linear interpolation (what mixing two cost_weights item by item gives in
  expectation). The curve spans [c_min, c_hi], c_hi = the mean cost at w = 0.
- random routing B(c): the best accuracy of sending every item to an expert drawn at random, independently of
  the item, from any distribution over the experts whose expected cost is at most c: the upper concave,
  non-decreasing envelope of the points (c_k, a_k). For N = 2 this is RouteLLM's random baseline.
- area: the mean of R(c) - B(c) over c in [c_min, c_hi] (the integral divided by c_hi - c_min), in accuracy
  points; positive when the router beats every query-blind router of the same cost.
- APGR (RouteLLM's average performance gap recovered, for N experts): the mean over c in [c_min, c_hi] of
  PGR(c) = (R(c) - a_cheap) / (a_best - a_cheap), a_cheap the cheapest expert's accuracy and a_best the best
  single expert's; the same for B. Their difference is the area divided by a_best - a_cheap.
The area's 95% interval is a percentile bootstrap over items (the router's choices fixed, every accuracy and
cost recomputed on each resample).

Usage: python bench/zooter_cost.py [--n 300] [--costs arc=1,mmlu=2,piqa=4] [--grid 201] [--bootstrap 2000]
"""

import argparse
import itertools
import json
import os

import numpy as np
from common import record
from zooter_items import read_item_rows
from zooter_quality import PIPELINE, load_items

from fslm.eval.stats import interval95, paired
from fslm.nodes.router.decision import learned_choice
from fslm.runtime.router.checkpoint import read_router_config
from fslm.spec import load_spec

TABLE_ROWS = 12  # sweep points shown in the table (the curve and the area use the whole grid)


def router_probabilities(checkpoint, questions: list[str]) -> np.ndarray:
    """The trained router's distribution over its experts for each query."""
    from fslm.runtime.router import RouterModel

    return distributions(RouterModel.load(checkpoint)[0], questions)


def distributions(router, questions: list[str]) -> np.ndarray:
    """`router`'s distribution over its experts for each query, in batches of 32."""
    import torch

    with torch.inference_mode():
        logits = torch.cat([router(questions[start : start + 32]) for start in range(0, len(questions), 32)])
    return logits.softmax(dim=-1).double().numpy()


def parse_costs(text: str, experts: list[str], checkpoint) -> dict[str, float]:
    if text == "measured":
        return {entry.name: entry.seconds_per_call for entry in read_router_config(checkpoint).experts}
    costs = {name: float(value) for name, value in (pair.split("=") for pair in text.split(","))}
    if sorted(costs) != sorted(experts) or min(costs.values()) <= 0:
        raise SystemExit(f"--costs must give every expert ({', '.join(experts)}) a cost > 0")
    return costs


def weight_grid(probabilities: np.ndarray, costs: list[float], size: int) -> np.ndarray:
    """cost_weight from 0 to 5% past the smallest value at which every item goes to the cheapest expert."""
    scaled = np.array(costs) / max(costs)
    cheapest = int(np.argmin(scaled))
    dearer = scaled > scaled[cheapest]
    if not dearer.any():
        return np.zeros(1)  # equal costs: cost_weight changes nothing
    margins = probabilities[:, dearer] - probabilities[:, [cheapest]]
    needed = float((margins / (scaled[dearer] - scaled[cheapest])).max())
    return np.linspace(0.0, 1.05 * max(needed, 0.0), size)


def choices_per_weight(probabilities: np.ndarray, costs: list[float], grid: np.ndarray) -> np.ndarray:
    """The expert index the node picks for every item at every cost_weight: shape (grid, items)."""
    return np.array(
        [[learned_choice(row.tolist(), costs, float(weight)) for row in probabilities] for weight in grid]
    )


def envelope(costs: np.ndarray, accuracies: np.ndarray, at: np.ndarray) -> np.ndarray:
    """B(c): the upper concave non-decreasing envelope of the points (cost, accuracy), evaluated at `at`."""
    order = np.lexsort((-accuracies, costs))
    hull: list[tuple[float, float]] = []
    for cost, accuracy in zip(costs[order], accuracies[order], strict=True):
        if hull and accuracy <= hull[-1][1]:
            continue  # costs more for no more accuracy: spending at most c never needs it
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], (cost, accuracy)) >= 0:
            hull.pop()
        hull.append((cost, accuracy))
    xs, ys = zip(*hull, strict=True)
    return np.interp(at, xs, ys)


def _cross(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def curve_area(
    point_costs: np.ndarray, point_accuracies: np.ndarray, expert_costs: np.ndarray, expert_acc: np.ndarray
) -> dict[str, float]:
    """The router curve against random routing: the area (mean gap) and both APGRs, exact for the piecewise
    linear curves (trapezoids on the union of their breakpoints)."""
    xs = np.unique(point_costs)
    ys = np.array([point_accuracies[point_costs == cost].mean() for cost in xs])
    low, high = float(expert_costs.min()), float(xs.max())
    knots = np.unique(np.concatenate([xs, expert_costs[(expert_costs > low) & (expert_costs < high)]]))
    router_at, random_at = np.interp(knots, xs, ys), envelope(expert_costs, expert_acc, knots)
    width = high - low

    def mean_over(values: np.ndarray) -> float:
        return float(np.trapezoid(values, knots) / width) if width > 0 else float(values.mean())

    cheap = float(expert_acc[np.argmin(expert_costs)])
    span = float(expert_acc.max()) - cheap
    return {
        "area": mean_over(router_at - random_at),
        "apgr_router": mean_over((router_at - cheap) / span) if span > 0 else float("nan"),
        "apgr_random": mean_over((random_at - cheap) / span) if span > 0 else float("nan"),
        "c_min": low,
        "c_hi": high,
    }


def sweep(probabilities, correct, costs: list[float], grid_size: int) -> dict:
    grid = weight_grid(probabilities, costs, grid_size)
    chosen = choices_per_weight(probabilities, costs, grid)
    cost_array = np.array(costs)
    return {
        "grid": grid,
        "chosen": chosen,
        "right": correct[np.arange(correct.shape[0])[None, :], chosen],
        "spent": cost_array[chosen],
        "expert_costs": cost_array,
    }


def area_of(result: dict, correct: np.ndarray, items: np.ndarray | slice = slice(None)) -> dict[str, float]:
    return curve_area(
        result["spent"][:, items].mean(1),
        result["right"][:, items].mean(1),
        result["expert_costs"],
        correct[items].mean(0),
    )


def bootstrap_area(result: dict, correct: np.ndarray, count: int, seed: int = 0) -> tuple[float, float]:
    generator = np.random.default_rng(seed)
    n = correct.shape[0]
    areas = [area_of(result, correct, generator.integers(0, n, n))["area"] for _ in range(count)]
    return float(np.percentile(areas, 2.5)), float(np.percentile(areas, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--costs", default="arc=1,mmlu=2,piqa=4", help="EXPERT=COST,... or 'measured'")
    parser.add_argument("--grid", type=int, default=201, help="cost_weight values swept")
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    spec = load_spec(PIPELINE)
    router = spec.stages["route"].router
    experts = router.experts
    rows = read_item_rows(args.n)
    questions = [item["question"] for item in load_items()[: args.n]]
    correct = np.array([[row["systems"][name]["correct"] for name in experts] for row in rows])
    probabilities = router_probabilities(router.checkpoint, questions)
    costs_by_name = parse_costs(args.costs, experts, router.checkpoint)
    costs = [costs_by_name[name] for name in experts]
    result = sweep(probabilities, correct, costs, args.grid)
    summary = area_of(result, correct)
    area_low, area_high = bootstrap_area(result, correct, args.bootstrap)
    best = int(correct.mean(0).argmax())
    points = result["spent"].mean(1)
    random_at = envelope(result["expert_costs"], correct.mean(0), points)
    shown = np.unique(np.linspace(0, args.grid - 1, TABLE_ROWS).round().astype(int))
    table = [
        sweep_row(result, index, experts, correct[:, best], float(random_at[index]), max(costs))
        for index in shown
    ]
    others = {}
    for permutation in sorted(set(itertools.permutations(costs))):
        if list(permutation) != costs:
            other = sweep(probabilities, correct, list(permutation), args.grid)
            label = ", ".join(f"{name}={cost:g}" for name, cost in zip(experts, permutation, strict=True))
            others[label] = round(100 * area_of(other, correct)["area"], 2)
    measured = parse_costs("measured", experts, router.checkpoint)
    measured_costs = [measured[name] for name in experts]
    others["measured s/call " + json.dumps({k: round(v, 1) for k, v in measured.items()})] = round(
        100 * area_of(sweep(probabilities, correct, measured_costs, args.grid), correct)["area"], 2
    )
    notes = describe(args, experts, costs_by_name, correct, summary, (area_low, area_high), others)
    path = record("zooter_cost", table, notes)
    print(path.read_text())
    print(f"load average {os.getloadavg()}")


def sweep_row(result, index: int, experts, best: np.ndarray, random_accuracy: float, largest: float) -> dict:
    right = result["right"][index]
    bounds = interval95(right.tolist())
    versus = paired(right.tolist(), best.tolist())
    shares = {name: int((result["chosen"][index] == k).sum()) for k, name in enumerate(experts)}
    cost = float(result["spent"][index].mean())
    return {
        "cost_weight": f"{result['grid'][index]:.3f}",
        "items per expert": ", ".join(f"{name} {count}" for name, count in shares.items()),
        "mean cost / item": f"{cost:.2f} ({100 * cost / largest:.0f}% of the dearest)",
        "router acc %": f"{100 * right.mean():.1f} [{100 * bounds.low:.1f}, {100 * bounds.high:.1f}]",
        "vs best expert: wins/losses (p)": f"{versus.wins}/{versus.losses} (p={versus.p_value:.3f})",
        "random at this cost, acc %": f"{100 * random_accuracy:.1f}",
    }


def describe(args, experts, costs, correct, summary, area_interval, others) -> str:
    accuracies = ", ".join(
        f"{name} {100 * correct[:, k].mean():.1f}% at cost {costs[name]:g}" for k, name in enumerate(experts)
    )
    uniform_cost = sum(costs.values()) / len(costs)
    cheapest = int(np.argmin([costs[name] for name in experts]))
    span = 100 * (correct.mean(0).max() - correct[:, cheapest].mean())
    items = (
        f"Items: the first {args.n} of finetune/data/zooter/bench.jsonl (100 each of ARC-Challenge, PIQA, "
        "MMLU), the same held-out items as zooter_quality.md; per-item correctness from "
        "bench/results/zooter_items.jsonl. Router: routers/zooter (pipelines/routed_choices.yaml), its "
        "distribution computed once per item; each point is the node's decision rule (learned_choice) at "
        f"that cost_weight, {args.grid} values from 0 to where every item goes to the cheapest expert."
    )
    declared = (
        f"COSTS ARE DECLARED, NOT MEASURED: {json.dumps(costs)}. The experts share one base model, so their "
        "real costs per call are equal; the declared costs stand for experts on base models of different "
        f"sizes. Experts alone: {accuracies}. The node's uniform `method: random` spends {uniform_cost:.2f} "
        f"per item for {100 * correct.mean():.1f}% in expectation."
    )
    baseline = (
        "Random at this cost: the best query-blind random routing spending at most that cost (the upper "
        "concave non-decreasing envelope of the experts' (cost, accuracy) points; docs/router.md defines it, "
        "the area and APGR)."
    )
    area = (
        f"Area between the router curve and random routing over costs {summary['c_min']:.2f} to "
        f"{summary['c_hi']:.2f}: {100 * summary['area']:+.2f} accuracy points "
        f"[{100 * area_interval[0]:+.2f}, {100 * area_interval[1]:+.2f}] (95% bootstrap over items, "
        f"{args.bootstrap} resamples). APGR: router {summary['apgr_router']:.3f}, random "
        f"{summary['apgr_random']:.3f} (the cheapest expert is only {span:.1f} points below the best, so "
        "APGR is very noisy here)."
    )
    other = (
        "Area under the other assignments of these costs and under the measured seconds per call: "
        f"{json.dumps(others)} (accuracy points)."
    )
    command = (
        f"Command: nice -n 15 python bench/zooter_cost.py --n {args.n} --costs {args.costs} --grid "
        f"{args.grid} --bootstrap {args.bootstrap}"
    )
    return f"{items}\n\n{declared}\n\n{baseline}\n\n{area}\n\n{other}\n\n{command}"


if __name__ == "__main__":
    main()
