"""Meta-learning accuracy and speed, measured in one process (CPU-sized budgets: minutes, not hours).

    .venv/bin/python benchmarks/meta.py sinusoid [--iterations 10000] [--methods maml,fomaml,reptile]  # vs baselines
    .venv/bin/python benchmarks/meta.py fewshot [--benchmark digits-fewshot] [--ways 2 --classes 0-3/4-5/6-9] [--rotate]
    .venv/bin/python benchmarks/meta.py protonet-bn [--benchmark digits-fewshot] [--ways 5]  # one forward vs two
    .venv/bin/python benchmarks/meta.py speed [--iterations 200]        # seconds per meta-iteration, ratios

`sinusoid`: Finn et al. 2017's protocol (10 shots, MLP 1-40-40-1, inner lr 0.01, 1 inner step while
meta-training, meta-batch 25, Adam 1e-3); mean MSE over 600 meta-test tasks (100 query points each)
with its 95% CI after 1 and 10 steps. `fewshot`: Fashion-MNIST (or `--benchmark`), every method with
its defaults on the Conv-4 backbone, model selection on validation episodes, 1- and 5-shot; then the
`scratch` floor with the same Conv-4 at 10 and 30 steps (step counts fixed a priori; 30 fits the
support set), and an MLP from scratch at 10 and 100 steps, all on the same meta-test episodes (drawn
once per seed); the table's last column is the spread over the tasks' class subsets.
`protonet-bn`: ProtoNets meta-trained with support and query embedded in one forward pass (the
library's) and in two (the former code), each from the same seed, on the same meta-test episodes.
`speed`: one process, interleaved: MAML second order against FOMAML and Reptile (ratio to FOMAML).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from lifelong.data.episodes import Episodes
from lifelong.meta import ProtoNet, evaluate, meta_test_episodes
from lifelong.experiment.meta import MetaConfig, make_learner, run_meta, summary
from lifelong.tables import text_table


def show(title: str, records: list[dict]) -> None:
    print(title)
    print(text_table(*summary(records)), flush=True)


def sinusoid(iterations: int, methods: list[str]) -> None:
    config = MetaConfig(benchmark="sinusoid", method=methods, shots=[10], steps=[1, 10], iterations=iterations)
    show(f"sinusoid 10-shot, {iterations} meta-iterations, MSE over 600 tasks", run_meta(config))


def fewshot(benchmark: str, iterations: int, ways: int, classes: str | None, shots: list[int], methods: list[str],
            rotate: bool, valid_every: int, valid_tasks: int, scratch_steps: list[int], steps: list[int]) -> None:
    config = MetaConfig(benchmark=benchmark, method=[*methods, "scratch"], ways=ways, shots=shots,
                        classes=classes, iterations=iterations, rotate=rotate, valid_every=valid_every,
                        valid_tasks=valid_tasks, steps=steps)
    records = run_meta(config)
    floors = [*(("conv4", n) for n in scratch_steps), ("mlp", 10), ("mlp", 100)]
    for shots_, model, n_steps in [(k, m, n) for k in shots for m, n in floors]:
        learner = make_learner("scratch", dataclasses.replace(config, model=model), shots_, config.seed)
        episodes, classes_ = meta_test_episodes(learner.tasks, config.eval_tasks)  # those of `run_meta`
        r = evaluate(learner, n_steps, episodes=episodes, classes=classes_)
        records.append({**records[-1], "method": f"scratch ({model})", "shots": shots_, "steps": n_steps,
                        "acc": r["mean"], "ci95": r["ci95"], "std": r["std"], "tasks": r["tasks"],
                        "by_classes": r["by_classes"],
                        "train_seconds": 0.0, "model": model, "selection": None, "kept": None})
    for r in records:
        if r.get("selection"):
            curve = [(i, round(v, 3), round(x, 3)) for i, v, x in r["selection"]["curve"]]
            print(f"{r['method']} {r['shots']}-shot: kept iteration {r['selection']['kept']} of {r['iterations']}, "
                  f"validation (iteration, accuracy, loss) {curve}")
    split = records[0]["task_info"]["classes"]
    show(f"{benchmark} {ways}-way, classes {split['train']} meta-train (rotated: {rotate}), {split['valid']} "
         f"validation, {split['test']} meta-test, Conv-4 unless named, {iterations} meta-iterations, accuracy over "
         f"{config.eval_tasks} tasks", records)


def two_forwards(learner: ProtoNet, episodes: Episodes) -> Tensor:
    """The former ProtoNet logits: support and query embedded in separate passes (own BatchNorm statistics)."""

    def one(xs: Tensor, ys: Tensor, xq: Tensor) -> Tensor:
        onehot = F.one_hot(ys, learner.ways).to(xs.dtype)
        protos = (onehot.T @ learner.embed(xs)) / onehot.sum(0).unsqueeze(1)
        return -(learner.embed(xq).unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)

    return vmap(one)(episodes.xs, episodes.ys, episodes.xq)


def protonet_bn(benchmark: str, iterations: int, ways: int, classes: str | None, shots: list[int],
                valid_every: int, valid_tasks: int) -> None:
    config = MetaConfig(benchmark=benchmark, method=["protonet"], ways=ways, shots=shots, classes=classes,
                        iterations=iterations, valid_every=valid_every, valid_tasks=valid_tasks)
    rows = []
    for k in shots:
        for forwards in ("one", "two"):
            learner = make_learner("protonet", config, k, config.seed)
            if forwards == "two":
                learner.logits = lambda episodes, learner=learner: two_forwards(learner, episodes)  # type: ignore
            valid = learner.tasks.valid.sample(valid_tasks) if learner.tasks.valid is not None else None
            learner.meta_train(iterations, valid=valid, every=valid_every, steps=0)
            episodes, classes_ = meta_test_episodes(learner.tasks, config.eval_tasks)
            r = evaluate(learner, 0, episodes=episodes, classes=classes_)
            rows.append([f"{forwards} forward pass{'es' if forwards == 'two' else ''}", str(k),
                         f"{r['mean'] * 100:.2f} ± {r['ci95'] * 100:.2f}", str(learner.selection["kept"])])
    print(f"{benchmark} {ways}-way protonet (Conv-4), {iterations} meta-iterations, {config.eval_tasks} test tasks")
    print(text_table(["ProtoNet", "shots", "acc % (95% CI)", "kept iteration"], rows), flush=True)


def speed(iterations: int, repeats: int = 3) -> None:
    names = ["fomaml", "maml", "reptile"]
    config = MetaConfig(benchmark="sinusoid", iterations=iterations)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    make_learner("fomaml", config, 10, 0).meta_train(5)  # warm-up
    for _ in range(repeats):
        for name in names:
            learner = make_learner(name, config, 10, 0)
            t0 = time.perf_counter()
            learner.meta_train(iterations)
            seconds[name].append((time.perf_counter() - t0) / iterations)
    base = statistics.median(seconds["fomaml"])
    print(f"sinusoid 10-shot, default options, {iterations} iterations x {repeats} interleaved repeats, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(text_table(["method", "ms / meta-iteration", "x fomaml"],
                     [[n, f"{statistics.median(s) * 1e3:.2f}", f"{statistics.median(s) / base:.2f}"]
                      for n, s in seconds.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["sinusoid", "fewshot", "protonet-bn", "speed"])
    parser.add_argument("--benchmark", default="fmnist-fewshot", help="fewshot, protonet-bn: the data set's episodes")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--methods", default="maml", help="sinusoid: methods beside pretrain (default maml)")
    parser.add_argument("--ways", type=int, default=5, help="fewshot: classes per episode (default 5)")
    parser.add_argument("--classes", help="fewshot: TRAIN/VALID/TEST classes (default 0-3/4-5/6-9 up to 3 ways, "
                        "0-4//5-9 for 4-5)")
    parser.add_argument("--shots", default="1,5", help="fewshot: support samples per class (default 1,5)")
    parser.add_argument("--fewshot-methods", default="maml,fomaml,anil,reptile,protonet",
                        help="fewshot: methods beside baseline, finetune and scratch")
    parser.add_argument("--rotate", action="store_true", help="fewshot: rotated meta-train classes as new classes")
    parser.add_argument("--valid-every", type=int, default=50, help="fewshot: model selection every N iterations")
    parser.add_argument("--valid-tasks", type=int, default=50, help="fewshot: validation episodes")
    parser.add_argument("--steps", default="10", help="fewshot: adaptation steps at meta-test (default 10)")
    parser.add_argument("--scratch-steps", default="30", help="fewshot: more step counts for the Conv-4 scratch floor "
                        "beside 10 (default 30; '' for none)")
    args = parser.parse_args()
    iterations = args.iterations or {"sinusoid": 10000, "fewshot": 200, "protonet-bn": 200, "speed": 200}[args.part]
    if args.part == "sinusoid":
        sinusoid(iterations, args.methods.split(","))
    elif args.part == "fewshot":
        fewshot(args.benchmark, iterations, args.ways, args.classes, [int(k) for k in args.shots.split(",")],
                args.fewshot_methods.split(","), args.rotate, args.valid_every, args.valid_tasks,
                [int(n) for n in args.scratch_steps.split(",") if n], [int(n) for n in args.steps.split(",")])
    elif args.part == "protonet-bn":
        protonet_bn(args.benchmark, iterations, args.ways, args.classes, [int(k) for k in args.shots.split(",")],
                    args.valid_every, args.valid_tasks)
    else:
        speed(iterations)


if __name__ == "__main__":
    main()
