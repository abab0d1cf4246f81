"""Measure targets.csv: ACC of each row over seeds 0-4; expected = mean, tolerance = max(3 std, 1.5).

    OMP_NUM_THREADS=1 .venv/bin/python -m tests.targets.measure          # print the table
    OMP_NUM_THREADS=1 .venv/bin/python -m tests.targets.measure --write  # and rewrite targets.csv
"""

import argparse
import csv
import io
import statistics

from lifelong.files import atomic_write_bytes

from .test_targets import TARGETS, fit, row_id

SEEDS = range(5)
# (benchmark, scenario, strategy, options, protocol)
ROWS = [
    *[("split-digits", "class", s, o, "digits") for s, o in [
        ("naive", ""), ("joint", ""), ("replay", "buffer_size=200"), ("der", "buffer_size=200"),
        ("icarl", "buffer_size=200")]],
    *[("permuted-digits", "domain", s, o, "digits") for s, o in [
        ("naive", ""), ("ewc", "lam=100"), ("online-ewc", "lam=10"), ("si", "c=1")]],
    *[("split-mnist1d", sc, s, o, "mnist1d") for sc, s, o in [
        ("class", "naive", ""), ("class", "replay", "buffer_size=500"), ("task", "naive", ""), ("task", "hat", ""),
        ("task", "packnet", "")]],
    *[("split-fmnist", "class", s, o, "fmnist-10k") for s, o in [
        ("naive", ""), ("joint", ""), ("replay", "buffer_size=500")]],
]
HEADER = ["benchmark", "scenario", "strategy", "options", "protocol", "expected_acc", "tolerance", "seed_std",
          "seed0_acc"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    out = []
    for bench, scenario, strategy, options, protocol in ROWS:
        row = {"benchmark": bench, "scenario": scenario, "strategy": strategy, "options": options,
               "protocol": protocol}
        accs = [fit(row, seed) * 100 for seed in SEEDS]
        mean, std = statistics.mean(accs), statistics.stdev(accs)
        row.update(expected_acc=f"{mean:.2f}", tolerance=f"{max(3 * std, 1.5):.2f}", seed_std=f"{std:.2f}",
                   seed0_acc=f"{accs[0]:.2f}")
        print(f"{row_id(row):45s} " + " ".join(f"{a:6.2f}" for a in accs) + f"  mean {mean:6.2f} std {std:5.2f}",
              flush=True)
        out.append(row)
    if args.write:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(out)
        atomic_write_bytes(TARGETS, buf.getvalue().encode())


if __name__ == "__main__":
    main()
