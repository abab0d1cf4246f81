"""The Continual World metrics against curves computed by hand."""

import numpy as np
import pytest

pytest.importorskip("torchrl")

from lifelong.rl import metrics as m  # noqa: E402

STEPS = [0, 5, 10, 15, 20]  # two tasks of 10 steps, evaluated every 5
CURVE = [[0.0, 0.0], [0.5, 0.1], [1.0, 0.2], [0.6, 0.6], [0.4, 1.0]]  # (p_0, p_1) at each point
REFS = [([0.0, 0.2, 0.6], [0, 5, 10]), ([0.0, 0.5, 1.0], [0, 5, 10])]  # each task alone from scratch


def test_average_performance_is_the_mean_at_the_end():
    assert m.average_performance(CURVE, STEPS, 10) == pytest.approx((0.4 + 1.0) / 2)


def test_forgetting_is_the_drop_from_each_tasks_end_to_the_last_point():
    assert m.forgetting_per_task(CURVE, STEPS, 10) == pytest.approx([1.0 - 0.4, 0.0])
    assert m.forgetting(CURVE, STEPS, 10) == pytest.approx(0.3)  # averaged over all T tasks, as CW does
    np.testing.assert_allclose(m.task_end_matrix(CURVE, STEPS, 10), [[1.0, 0.2], [0.4, 1.0]])


def test_auc_by_the_trapezoid_rule():
    # task 0: (0 + .5)/2 * 5 + (.5 + 1)/2 * 5 = 5 over 10 steps; task 1: (.2 + .6)/2 * 5 + (.6 + 1)/2 * 5 = 6
    assert m.auc([row[0] for row in CURVE], STEPS, 0, 10) == pytest.approx(0.5)
    assert m.auc([row[1] for row in CURVE], STEPS, 10, 20) == pytest.approx(0.6)


def test_forward_transfer_against_the_reference_runs():
    # AUC^b: task 0 (0 + .2)/2 * 5 + (.2 + .6)/2 * 5 = 2.5 -> .25; task 1: 5 -> .5
    per_task = m.forward_transfer_per_task(CURVE, STEPS, 10, REFS)
    assert per_task == pytest.approx([(0.5 - 0.25) / 0.75, (0.6 - 0.5) / 0.5])
    assert m.forward_transfer(CURVE, STEPS, 10, REFS) == pytest.approx((1 / 3 + 0.2) / 2)


def test_forward_transfer_is_undefined_against_a_perfect_reference():
    refs = [REFS[0], ([1.0, 1.0, 1.0], [0, 5, 10])]
    assert m.forward_transfer_per_task(CURVE, STEPS, 10, refs)[1] is None
    assert m.forward_transfer(CURVE, STEPS, 10, refs) == pytest.approx(1 / 3)


def test_normalise_clips_to_a_success_rate():
    np.testing.assert_allclose(m.normalise([10, 20, 260, 600], 20, 500), [0, 0, 0.5, 1])
    with pytest.raises(ValueError, match="high > low"):
        m.normalise([1.0], 5, 5)


def test_curves_without_a_point_at_a_task_end_are_refused():
    with pytest.raises(ValueError, match="no evaluation point at step 10"):
        m.forgetting([[0.0, 0.0], [1.0, 1.0]], [0, 20], 10)
    with pytest.raises(ValueError, match="must increase"):
        m.average_performance(CURVE, [0, 5, 5, 15, 20], 10)
