"""Task-free online continual learning (issue 22): every online strategy on online class-incremental Split
Fashion-MNIST, one pass, batch 10, several seeds.

Each strategy runs as `lifelong run --scenario online` does (`lifelong.experiment.run`): the 5 tasks of
classes (0,1)..(8,9) met once in a stream without boundaries or task ids, MLP 784-400-400-10, SGD lr 0.1
without momentum, batch 10; memories of 1000 samples replaying 10 per step; online EWC and SI consolidate
every 1000 samples with the implicit (proximal) penalty step; SLDA and NCM on the untrained network's
features (no pretrained backbone here). The settings are the online literature's usual batch and replay
sizes, not tuned (no accuracy was looked at to choose them). Anytime accuracy every `--eval-every`
samples on 250 held-out test samples per task. Reference: "i.i.d. one pass", naive on the same samples
met once in a random order (the upper bound of one pass). Prints mean ± std over the seeds of the final
ACC (whole test set), AAA, online forgetting, the stability gap (all in %), and samples/s (training only,
evaluation excluded).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/online.py [--seeds 3] [--blurry 0] [--drift 0]
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import torch

from lifelong.experiment import RunConfig, make_stream, run
from lifelong.experiment.continual import make_model
from lifelong.metrics import mean_std
from lifelong.strategies import Naive
from lifelong.errors import TrainingError
from lifelong.training import Trainer

STRATEGIES = "naive,replay,mir,er-ace,agem,der,derpp,online-ewc,si,slda,ncm"
PROTOCOL: dict[str, Any] = {
    "benchmark": "split-fmnist", "scenario": "online", "class_order": list(range(10)), "optimizer": "sgd",
    "lr": 0.1, "batch_size": 10, "buffer_size": 1000, "replay_batch_size": 10, "eval_samples": 250,
    "strategy_options": {"online-ewc": {"step": "implicit"}, "si": {"step": "implicit"}},
}
KEYS = ("acc", "aaa", "online_forgetting", "stability_gap")


def iid_reference(config: RunConfig, seed: int) -> dict[str, Any]:
    """Naive on the stream's samples met once in a random order: the one-pass upper bound."""
    stream = make_stream(config, seed)
    stream = dataclasses.replace(stream, order=torch.randperm(len(stream.order),
                                                              generator=torch.Generator().manual_seed(seed)))
    torch.manual_seed(seed)
    trainer = Trainer(make_model(config, stream, torch.device("cpu")), Naive(), batch_size=config.batch_size,
                      lr=config.lr, optimizer=config.optimizer, seed=seed)
    result = trainer.fit_online(stream, config.eval_every, config.eval_samples)
    return {**{k: result.metrics[k] for k in KEYS}, "samples_per_second": result.metrics["samples_per_second"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--strategies", default=STRATEGIES)
    p.add_argument("--blurry", type=float, default=0.0)
    p.add_argument("--drift", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--lr", type=float, default=PROTOCOL["lr"])
    p.add_argument("--no-iid", dest="iid", action="store_false", help="leave out the i.i.d. one-pass reference")
    args = p.parse_args()
    config = RunConfig(**PROTOCOL | {"lr": args.lr}, seeds=args.seeds, blurry=args.blurry, drift=args.drift,
                       eval_every=args.eval_every)
    print(f"online class-IL Split Fashion-MNIST, batch 10, SGD lr {args.lr}, one pass, blurry {args.blurry}, "
          f"drift {args.drift}, {args.seeds} seeds, {torch.get_num_threads()} thread(s); accuracies in %")
    print("| strategy | ACC | AAA | online forgetting | stability gap | samples/s |")
    print("| --- | --- | --- | --- | --- | --- |", flush=True)
    for spec in args.strategies.split(","):
        try:
            recs = [{**{k: r[k] for k in KEYS}, "samples_per_second": r["samples_per_second"]}
                    for r in run(dataclasses.replace(config, strategy=[spec], strategy_options={
                        k: v for k, v in config.strategy_options.items() if k == spec},
                        consolidate_every=1000 if spec in ("online-ewc", "si") else 0))]
        except TrainingError as err:  # a diverged strategy is a row, not the end of the table
            print(f"| {spec} | diverged: {err} |", flush=True)
            continue
        row(spec, recs)
    if args.iid:
        row("i.i.d. one pass (naive)", [iid_reference(config, s) for s in range(config.seed, config.seed + args.seeds)])


def row(name: str, recs: list[dict[str, Any]]) -> None:
    """One Markdown row: mean ± std over the seeds."""
    cells = [f"{m * 100:.1f} ± {s * 100:.1f}" for m, s in (mean_std([r[k] for r in recs]) for k in KEYS)]
    rate = mean_std([r["samples_per_second"] for r in recs])
    print(f"| {name} | {' | '.join(cells)} | {rate[0]:.0f} ± {rate[1]:.0f} |", flush=True)

if __name__ == "__main__":
    main()
