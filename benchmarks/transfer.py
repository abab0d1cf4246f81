"""Transfer learning benchmarks: the few-shot learning curve and the cost of an epoch.

`curve`: Fashion-MNIST classes 0-4 -> 5-9 (`lifelong transfer`'s default; or `--source`, `--target`),
CNN, the source model pretrained per seed for `--source-epochs`, k labelled target samples per class drawn `--draws`
times per seed (accuracies averaged per seed), every method, frozen features at the model's transfer layer (the CNN's
conv trunk; `--feature-cut` to change), at least `--steps` Adam steps per target fit (lr 1e-3, batch 128); prints a
Markdown table of the mean ± std over the seeds of the per-seed mean target test accuracy (the same records as
`lifelong transfer --json`) and, per method, the mean and the range over the seeds of its paired difference to
scratch (same seed, same draws).

`select`: the held-out choice of the `l2n` probe's C (and of normalising at all) for Fashion-MNIST models. Per seed the
source CNN is pretrained on `--source` as in `curve`; the validation tasks are 1-shot tasks (`--draws` per seed) on
`--targets`, by default the 8x8 digits resized to 28x28 (`digits28`, classes 0-4 and 5-9): images the source never
saw, of classes unrelated to the Fashion-MNIST target's. Prints, per C, the mean paired difference to scratch of
the l2n probe (and of the raw probe with C = 1) over seeds and targets; the best C is the `l2n` head's default.
`--methods lpft,lpft-l2n` adds those curve methods (LP-FT from either probe) to the comparison.

`timing`: one epoch over `--n` target training samples (batch 128, Adam), interleaved `--repeats`
times, medians: fine-tuning the whole CNN against a linear head on features cached once (at the CNN's
transfer layer, its conv trunk); the one-off extraction is reported on its own, and the ratio of epochs
is measured in this process.

    .venv/bin/python benchmarks/transfer.py curve [--seeds 3] [--shots 1,5,10,50] [--draws 5] [--method ...]
    .venv/bin/python benchmarks/transfer.py curve --source mnist1d:0-4 --target mnist1d:5-9 --source-epochs 30
    .venv/bin/python benchmarks/transfer.py select [--seeds 3] [--draws 20] [--C 0.1,1,10,100] [--methods lpft,lpft-l2n]
    .venv/bin/python benchmarks/transfer.py timing [--n 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import lifelong as ll
from lifelong.errors import ConfigError
from lifelong.tables import curve_rows, markdown_table
from lifelong.experiment import CurveConfig, learning_curve
from lifelong.transfer import TRANSFER_METHODS, few_shot, fit_head, fit_method, pretrain
from lifelong.transfer.features import cache


def curve(args: argparse.Namespace) -> None:
    shots = [None if k == "all" else int(k) for k in args.shots.split(",")]
    config = CurveConfig(source=args.source, target=args.target, model=args.model, shots=shots,
                         method=args.method.split(","), seeds=args.seeds, steps=args.steps, draws=args.draws,
                         feature_cut=args.feature_cut, source_epochs=args.source_epochs, device=args.device)
    t0 = time.perf_counter()
    records = learning_curve(config, on_record=lambda r: print(
        f"  seed {r['seed']} shots {r['shots']} {r['method']}: {r['acc'] * 100:.2f}% ({r['train_seconds']:.1f} s)",
        flush=True))
    print(f"{config.source} -> {config.target}, {config.model}, {config.seeds} seeds x {config.draws} draws, "
          f"feature cut {records[0]['feature_cut']}, source epochs {config.source_epochs}, >= {config.steps} steps per "
          f"fit, source test accuracy "
          f"{', '.join(f'{a * 100:.2f}' for a in dict.fromkeys(r['source_acc'] for r in records))}%, "
          f"{time.perf_counter() - t0:.0f} s in all")
    print(markdown_table(*curve_rows(records)))
    if "scratch" in config.method:
        print("paired difference to scratch (points): mean over seeds [lowest, highest seed]")
        base = {(r["seed"], r["shots"]): r["acc"] for r in records if r["method"] == "scratch"}
        rows = []
        for method in dict.fromkeys(r["method"] for r in records if r["method"] != "scratch"):
            rows.append([method])
            for k in dict.fromkeys(r["shots"] for r in records):
                d = [100 * (r["acc"] - base[r["seed"], k]) for r in records if (r["method"], r["shots"]) == (method, k)]
                rows[-1].append(f"{statistics.mean(d):+.2f} [{min(d):+.2f}, {max(d):+.2f}]")
        print(markdown_table(curve_rows(records)[0], rows))


def select(args: argparse.Namespace) -> None:
    targets = args.targets.split(",")
    Cs = [float(c) for c in args.C.split(",")]
    cuts: list[int | None] = [int(c) for c in args.cuts.split(",")] if args.cuts else [None]
    heads = [(name + (f", cut {cut}" if cut is not None else ""), head, c, cut) for cut in cuts
             for name, head, c in [("probe, C 1", "logistic", 1.0)] + [(f"probe-l2n, C {c:g}", "l2n", c) for c in Cs]]
    methods = [m for m in args.methods.split(",") if m]
    if args.lr_scales and not all(m.startswith("lpft") for m in methods):
        raise ConfigError("--lr-scales is LP-FT's stage-2 learning-rate scale: give only --methods lpft,lpft-l2n")
    scales = [{"lr_scale": float(x)} for x in args.lr_scales.split(",")] if args.lr_scales else [{}]
    fits = [(m + (f" x{o['lr_scale']:g}" if o else ""), m, o) for m in methods for o in scales]
    names = [name for name, *_ in heads] + [name for name, *_ in fits]
    diffs: dict[str, list[float]] = {name: [] for name in names}
    rows = []
    for seed in range(args.seeds):
        source, meta = pretrain(args.source, "cnn", seed=seed, epochs=args.source_epochs, lr=1e-3, batch_size=128)
        for spec in targets:
            target = ll.data.dataset(spec)
            features = {cut: cache(source, target, cut=cut)[:2] for cut in cuts}
            train = dict(epochs=args.steps, lr=1e-3, batch_size=128, seed=seed, device=args.device)
            per: dict[str, list[float]] = {name: [] for name in names}
            for d in range(args.draws):
                idx = few_shot(target.train, 1, seed + 1000 * d)
                scratch = fit_method("scratch", source, meta, target, idx, train)[0]
                for name, head, c, cut in heads:
                    f_train, f_test = features[cut]
                    per[name].append(100 * (fit_head(f_train.subset(idx), f_test, target.num_classes, head=head,
                                                     C=c)[1] - scratch))
                for name, method, options in fits:
                    per[name].append(100 * (fit_method(method, source, meta, target, idx, {**train, **options})[0]
                                            - scratch))
            rows.append([str(seed), spec] + [f"{statistics.mean(v):+.2f}" for v in per.values()])
            for name, v in per.items():
                diffs[name].append(statistics.mean(v))
            print("  " + " | ".join(rows[-1]), flush=True)
    rows.append(["mean", ""] + [f"**{statistics.mean(v):+.2f}**" for v in diffs.values()])
    print(f"1-shot paired difference to scratch (points), {args.source} -> {', '.join(targets)}, {args.seeds} seeds x "
          f"{args.draws} draws, source epochs {args.source_epochs}, >= {args.steps} steps per scratch fit")
    print(markdown_table(["seed", "target"] + names, rows))


def timing(args: argparse.Namespace) -> None:
    target = ll.data.dataset("fmnist:5-9")
    torch.manual_seed(0)
    source = ll.models.build("cnn", target.input_shape, 5)  # the weights do not change the cost
    data = ll.data.Dataset("target", target.train.subset(torch.arange(args.n)),
                           target.test.subset(torch.arange(1000)), target.class_names, target.input_shape)
    options = dict(epochs=1, batch_size=128, device=args.device)
    finetune_s, head_s, extract_s = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        train, test, _ = cache(source, data)
        extract_s.append(time.perf_counter() - t0)
        head_s.append(fit_head(train, test, 5, **options)[2])
        finetune_s.append(ll.transfer.finetune(copy.deepcopy(source), data, **options).train_seconds)
    ft, hd, ex = (statistics.median(v) for v in (finetune_s, head_s, extract_s))
    print(f"fmnist:5-9, {args.n} training samples, cnn, batch 128, Adam, device {args.device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.repeats} interleaved repeats (medians)")
    print(markdown_table(["what", "seconds", "vs fine-tuning epoch"], [
        ["fine-tuning, one epoch", f"{ft:.2f}", "1.00"],
        ["features: extraction of train + 1000 test (once)", f"{ex:.2f}", f"{ex / ft:.3f}"],
        ["features: one head epoch on the cached features", f"{hd:.3f}", f"{hd / ft:.4f} ({ft / hd:.0f}x faster)"],
    ]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curve")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--shots", default="1,5,10,50")
    c.add_argument("--method", default=",".join(TRANSFER_METHODS))
    c.add_argument("--steps", type=int, default=100)
    c.add_argument("--draws", type=int, default=5)
    c.add_argument("--feature-cut", type=int, default=None)
    c.add_argument("--source-epochs", type=int, default=1)
    c.add_argument("--source", default="fmnist:0-4")
    c.add_argument("--target", default="fmnist:5-9")
    c.add_argument("--model", default="cnn")
    v = sub.add_parser("select")
    v.add_argument("--seeds", type=int, default=3)
    v.add_argument("--draws", type=int, default=20)
    v.add_argument("--steps", type=int, default=100)
    v.add_argument("--C", default="0.1,1,10,100")
    v.add_argument("--methods", default="", help="curve methods that train a network, compared too (lpft,lpft-l2n)")
    v.add_argument("--lr-scales", default="", help="LP-FT's stage-2 learning-rate scales to compare (0.03,0.1,0.3,1)")
    v.add_argument("--cuts", default="", help="feature cuts the probes are compared at (0,2,6; default the model's)")
    v.add_argument("--source", default="fmnist:0-4")
    v.add_argument("--source-epochs", type=int, default=1)
    v.add_argument("--targets", default="digits28:0-4,digits28:5-9")
    t = sub.add_parser("timing")
    t.add_argument("--n", type=int, default=10000)
    t.add_argument("--repeats", type=int, default=3)
    for p in (c, v, t):
        p.add_argument("--device", default="cpu")
    args = parser.parse_args()
    {"curve": curve, "select": select, "timing": timing}[args.what](args)


if __name__ == "__main__":
    main()
