import torch

from lifelong import distributed

from .ranks import run_ranks


def test_single_process_collectives_are_no_ops():
    x = torch.arange(6.0).view(3, 2)
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard(x) is x
    assert distributed.all_gather_rows(x) is x
    y = x.clone()
    distributed.all_reduce_sum([y])
    assert torch.equal(x, y)
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    distributed.average_gradients([p], 5)
    assert torch.equal(p.grad, torch.full((2,), 3.0))


def test_collectives_across_two_gloo_processes(tmp_path):
    results = run_ranks("""
        def main():
            r = distributed.rank()
            rows = torch.arange(10.0).view(5, 2)
            a, b = torch.full((2,), float(r + 1)), torch.full((3,), 10.0 * (r + 1))
            distributed.all_reduce_sum([a, b])
            p = torch.nn.Parameter(torch.zeros(2))
            p.grad = torch.full((2,), 1.0 if r == 0 else 4.0)
            distributed.average_gradients([p], 1 if r == 0 else 2)  # (1*1 + 2*4) / 3 = 3
            gathered = distributed.all_gather_rows(torch.full((r + 1, 2), float(r)))  # uneven counts
            w = torch.full((3,), float(r))
            distributed.broadcast([w])
            return {"world": distributed.world_size(), "shard": distributed.shard(rows).tolist(),
                    "a": a.tolist(), "b": b.tolist(), "grad": p.grad.tolist(), "gathered": gathered.tolist(),
                    "w": w.tolist(), "main": distributed.is_main()}
    """, tmp_path)
    assert [r["world"] for r in results] == [2, 2]
    assert [r["main"] for r in results] == [True, False]
    assert results[0]["shard"] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # 5 rows: 3 + 2
    assert results[1]["shard"] == [[6.0, 7.0], [8.0, 9.0]]
    for r in results:
        assert r["a"] == [3.0, 3.0] and r["b"] == [30.0] * 3
        assert r["grad"] == [3.0, 3.0]
        assert r["gathered"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        assert r["w"] == [0.0] * 3


TRAIN = """
import lifelong as ll

def fit(batch_size, lr=0.05, optimizer="sgd", momentum=0.9):
    stream = ll.data.split(ll.data.digits(), n_tasks=2, scenario="class", seed=0)
    torch.manual_seed(0)
    model = ll.models.mlp(64, stream.n_outputs, hidden=(32,))
    trainer = ll.Trainer(model, epochs=1, batch_size=batch_size, lr=lr, optimizer=optimizer, momentum=momentum)
    result = trainer.fit(stream)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    return {"params": flat.tolist(), "matrix": result.matrix, "losses": result.losses}
"""


def test_two_ranks_with_half_batches_step_as_one_process_with_the_whole_batch(tmp_path):
    # 2 tasks of ~670 samples, batch 30: the last batch of each epoch is odd-sized, so the ranks' shares differ
    results = run_ranks(TRAIN + """
def main():
    return fit(30)
""", tmp_path)
    scope: dict = {"torch": torch}
    exec(TRAIN, scope)
    single = scope["fit"](30)
    for r in results:
        assert torch.allclose(torch.tensor(r["params"]), torch.tensor(single["params"]), atol=1e-5, rtol=1e-4)
        assert r["matrix"] == single["matrix"]  # evaluation shards the test sets and sums the counts
    assert results[0]["params"] == results[1]["params"]  # every rank holds the same model
