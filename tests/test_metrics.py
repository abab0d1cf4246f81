import numpy as np
import pytest

from lifelong import metrics

# Hand-computed example: 3 tasks.
R = [
    [0.90, 0.10, 0.20],
    [0.95, 0.80, 0.30],
    [0.50, 0.70, 0.95],
]
B = [0.10, 0.05, 0.10]


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.50 + 0.70 + 0.95) / 3)


def test_backward_transfer_uses_diagonal_not_max():
    # ((0.50 - 0.90) + (0.70 - 0.80)) / 2
    assert metrics.backward_transfer(R) == pytest.approx(-0.25)


def test_forward_transfer_against_reference_row():
    # ((R[0,1] - b1) + (R[1,2] - b2)) / 2 = ((0.10 - 0.05) + (0.30 - 0.10)) / 2
    assert metrics.forward_transfer(R, B) == pytest.approx(0.125)


def test_forgetting_uses_best_earlier_accuracy():
    # task 0: max(0.90, 0.95) - 0.50 = 0.45 ; task 1: max(0.10, 0.80) - 0.70 = 0.10
    assert metrics.forgetting(R) == pytest.approx(0.275)
    assert metrics.forgetting(R) != pytest.approx(-metrics.backward_transfer(R))


def test_forgetting_ignores_rows_before_the_task_was_learnt():
    # task 1 scored 0.6 by chance before it was learnt (row 0), 0.5 after, and keeps 0.5: nothing forgotten
    r = [[0.9, 0.6, 0.1], [0.9, 0.5, 0.1], [0.9, 0.5, 0.8]]
    assert metrics.forgetting(r) == 0.0
    # task 1 learnt to 0.5, later 0.7 (backward transfer), finally 0.4: forgets 0.7 - 0.4; task 0 none
    r = [[0.9, 0.95, 0.1, 0.2], [0.9, 0.5, 0.1, 0.2], [0.9, 0.7, 0.6, 0.2], [0.9, 0.4, 0.6, 0.8]]
    assert metrics.forgetting(r) == pytest.approx((0 + 0.3 + 0) / 3)


def test_learning_accuracy():
    assert metrics.learning_accuracy(R) == pytest.approx((0.90 + 0.80 + 0.95) / 3)


def test_summary_keys_and_single_task():
    s = metrics.summary([[0.7]], [0.1])
    assert s == {"acc": 0.7, "bwt": 0.0, "fwt": 0.0, "forgetting": 0.0, "learning_accuracy": 0.7}


def test_no_forgetting_matrix():
    r = np.triu(np.full((4, 4), 0.9)) + np.tril(np.full((4, 4), 0.9), -1)
    assert metrics.backward_transfer(r) == 0.0 and metrics.forgetting(r) == 0.0


@pytest.mark.parametrize("bad", [[[0.1, 0.2]], [], [[0.1], [0.2]]])
def test_non_square_matrix_rejected(bad):
    with pytest.raises(ValueError):
        metrics.average_accuracy(bad)


def test_reference_row_length_checked():
    with pytest.raises(ValueError):
        metrics.forward_transfer(R, [0.1, 0.2])


def test_mean_std():
    assert metrics.mean_std([1.0, 3.0]) == pytest.approx((2.0, np.sqrt(2.0)))
    assert metrics.mean_std([5.0]) == (5.0, 0.0)


# An online curve: points at 50..300 samples, hidden boundaries at 100, 200, 300 (3 tasks).
SAMPLES = [50, 100, 150, 200, 250, 300]
TASKS = [[0.5, 0.0, 0.0],
         [0.9, 0.1, 0.0],   # end of task 0's segment
         [0.4, 0.6, 0.1],
         [0.7, 0.9, 0.2],   # end of task 1's segment
         [0.6, 0.3, 0.5],
         [0.8, 0.5, 0.9]]   # end
ENDS = [100, 200, 300]


def test_online_forgetting_takes_the_best_point_after_each_segment():
    # task 0: max(0.9, 0.4, 0.7, 0.6, 0.8) - 0.8 = 0.1; task 1: max(0.9, 0.3, 0.5) - 0.5 = 0.4
    assert metrics.online_forgetting(SAMPLES, TASKS, ENDS) == pytest.approx((0.1 + 0.4) / 2)


def test_stability_gap_is_the_dip_right_after_each_shift():
    # shift 0 (point 1): task 0: 0.9 - min(0.4, 0.7) = 0.5
    # shift 1 (point 3): task 0: 0.7 - min(0.6, 0.8) = 0.1; task 1: 0.9 - min(0.3, 0.5) = 0.6
    assert metrics.stability_gap(SAMPLES, TASKS, ENDS) == pytest.approx((0.5 + 0.1 + 0.6) / 3)
    rising = [[0.5, 0.0], [0.6, 0.1], [0.9, 0.8], [0.8, 0.9]]  # task 0 only rises after the shift: no gap
    assert metrics.stability_gap([1, 2, 3, 4], rising, [2, 4]) == 0.0


def test_min_and_worst_case_accuracy():
    # task 0 after point 1: min(0.4, 0.7, 0.6, 0.8) = 0.4; task 1 after point 3: min(0.3, 0.5) = 0.3
    assert metrics.min_accuracy(SAMPLES, TASKS, ENDS) == pytest.approx(0.35)
    assert metrics.worst_case_accuracy(SAMPLES, TASKS, ENDS) == pytest.approx(0.9 / 3 + 2 / 3 * 0.35)


def test_online_summary_and_bad_curves():
    curve = {"samples": SAMPLES, "tasks": TASKS, "ends": ENDS, "anytime": [0.5, 0.9, 0.5, 0.8, 0.5, 0.7]}
    out = metrics.online_summary(curve)
    assert out["aaa"] == pytest.approx(3.9 / 6) and out["final_anytime"] == 0.7
    grid = metrics.online_summary(curve | {"regular": [False, True, False, True, False, True]})
    assert grid["aaa"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)  # boundary-only points are left out
    assert metrics.online_forgetting(SAMPLES, [r[:1] for r in TASKS], [300]) == 0.0
    with pytest.raises(ValueError, match="points x"):
        metrics.stability_gap(SAMPLES, TASKS[:-1], ENDS)
    with pytest.raises(ValueError, match="a point measured at or after it"):
        metrics.online_forgetting(SAMPLES[:-1], TASKS[:-1], ENDS)
    with pytest.raises(ValueError, match="non-empty"):
        metrics.average_anytime_accuracy([])
