"""Scores broken down by the expert a router stage chose: per router stage and chosen expert, how many items
it was handed and their mean score by each metric, with a 95% interval (`fslm eval` prints these)."""

from __future__ import annotations

from dataclasses import dataclass

from fslm.eval.runner import EvalReport
from fslm.eval.stats import Interval, interval95


@dataclass(frozen=True)
class ExpertScore:
    router: str  # the router stage
    expert: str  # the expert it chose for these items
    items: int
    metric: str
    mean: float
    interval: Interval


def by_chosen_expert(report: EvalReport) -> list[ExpertScore]:
    """Per router stage (in the order runs met them), per expert it chose (most items first), per metric.
    Items whose run did not reach a router stage count for none of its experts."""
    routers = list(dict.fromkeys(router for item in report.items for router in item.routed))
    rows = []
    for router in routers:
        groups: dict[str, list[dict[str, float]]] = {}
        for item in report.items:
            if router in item.routed:
                groups.setdefault(item.routed[router], []).append(item.scores)
        for expert, scores in sorted(groups.items(), key=lambda group: -len(group[1])):
            for metric in report.metrics:
                values = [score[metric] for score in scores]
                rows.append(
                    ExpertScore(
                        router, expert, len(values), metric, sum(values) / len(values), interval95(values)
                    )
                )
    return rows
