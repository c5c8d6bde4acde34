"""python -m trading_pipeline_tests.benchmarks.soak [--venues ibkr,alpaca,robinhood] [--faults 1000] [--seed 1]

Prints one row per venue and seed: orders intended, sent, duplicated, lost, misrecorded; shares
of fills lost or double-counted; executions with stale figures; breaks raised and explained.
Exits non-zero when any row is not clean (target: 0 of each, every break explained).
"""

from __future__ import annotations

import argparse
import logging
import sys

from trading_pipeline_tests.benchmarks.soak.runner import format_table, soak_venues


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", default="ibkr,alpaca,robinhood")
    parser.add_argument("--faults", type=int, default=1000, help="faults (rounds) per venue")
    parser.add_argument("--seed", type=int, action="append",
                        help="random seed; repeat for several (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the adapters log every retry
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    rows = []
    for seed in args.seed or [1]:
        for figures in soak_venues(venues, faults=args.faults, seed=seed):
            rows.append(figures)
            print(f"{figures.venue} seed {seed}: done in {figures.seconds:.1f} s", file=sys.stderr)
    print(format_table(rows))
    return 0 if all(r.clean for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
