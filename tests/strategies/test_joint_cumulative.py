import lifelong as ll
from lifelong.strategies import Cumulative, Joint

from ..conftest import small_mlp


def test_joint_trains_once_on_everything(digits_stream):
    r = ll.Trainer(small_mlp(digits_stream), Joint(), epochs=3, seed=0, batch_size=16).fit(digits_stream)
    assert r.samples_seen == 3 * sum(len(t.train) for t in digits_stream)
    assert all(row == r.matrix[0] for row in r.matrix)  # nothing trained after the first task
    assert r.losses[1:] == [[]] * 4
    assert r.metrics["acc"] > 0.85 and r.metrics["bwt"] == 0.0


def test_cumulative_sees_all_data_so_far_and_does_not_forget(digits_stream):
    r = ll.Trainer(small_mlp(digits_stream), Cumulative(), epochs=3, seed=0, batch_size=16).fit(digits_stream)
    sizes = [len(t.train) for t in digits_stream]
    assert r.samples_seen == 3 * sum(sum(sizes[: i + 1]) for i in range(5))
    naive = ll.Trainer(small_mlp(digits_stream), epochs=3, seed=0, batch_size=16).fit(digits_stream)
    assert r.metrics["acc"] > 0.75 and r.metrics["acc"] > naive.metrics["acc"] + 0.4
    assert r.metrics["forgetting"] < 0.1
