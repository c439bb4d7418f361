"""How well the health model separates strong from weak relationships, and how its trend behaves, on
synthetic ties whose truth is known (see bench/evaluation/health_model.py for the method).

    .venv/bin/python bench/health_eval.py [--relationships 300] [--seeds 11 12 13] [--step daily|weekly]

Daily steps are what the product does (and take about seven times as long); weekly ones are what the unit test
uses.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.evaluation.health_model import DAILY, WEEKLY, evaluate
from bench.evaluation.ties import generate

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def _weeks(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} wk"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--relationships", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--step", choices=["daily", "weekly"], default="daily")
    args = parser.parse_args()
    step = DAILY if args.step == "daily" else WEEKLY
    print(f"{args.step} steps")
    print("seed | ties | activities | scored | AUC truth: model / recency / volume | AUC next 30 d: model / recency / "
          "volume | Spearman | cooling → declining (steady, by chance) | warming → improving (steady, by chance) | "
          "steady false alarms | changes/quarter")
    for seed in args.seeds:
        started = time.perf_counter()
        data = generate(relationships=args.relationships, seed=seed, now=NOW)
        result = evaluate(data, NOW, step)
        truth, future = result.auc_truth, result.auc_future
        print(f"{seed} | {args.relationships} | {len(data.records['activities'])} | {result.coverage:.0%} | "
              f"{truth['model']:.3f} / {truth['recency']:.3f} / {truth['volume90d']:.3f} | "
              f"{future['model']:.3f} / {future['recency']:.3f} / {future['volume90d']:.3f} | "
              f"{result.spearman:.2f} | {result.cooling_declining:.0%} in {_weeks(result.cooling_delay_weeks)} "
              f"({result.steady_declining:.0%}) | {result.warming_improving:.0%} in "
              f"{_weeks(result.warming_delay_weeks)} ({result.steady_improving:.0%}) | "
              f"{result.steady_false_alarms:.1%} | {result.steady_flips_per_quarter:.2f} "
              f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
