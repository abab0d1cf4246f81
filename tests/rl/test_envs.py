import math

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("torchrl")

from lifelong.errors import ConfigError  # noqa: E402
from lifelong.rl import SEQUENCES, TaskSpec, sequence  # noqa: E402
from lifelong.rl.envs import Sequence  # noqa: E402


def test_cartpole_physics_sets_the_unwrapped_attributes_and_derived_ones():
    env = TaskSpec("CartPole-v1", {"length": 1.0, "masspole": 0.5}).make(seed=0).unwrapped
    assert env.length == 1.0 and env.masspole == 0.5
    assert env.polemass_length == pytest.approx(0.5) and env.total_mass == pytest.approx(1.5)


def test_physics_changes_the_dynamics():
    def first_steps(physics):
        env = TaskSpec("Pendulum-v1", physics).make(seed=3)
        env.reset()
        return [env.step(np.zeros(1, np.float32))[0] for _ in range(5)][-1]

    assert not np.allclose(first_steps({"g": 10.0}), first_steps({"g": 2.0}))
    np.testing.assert_array_equal(first_steps({"g": 10.0}), first_steps({"g": 10.0}))  # seeded: the same episode


def test_sequences_by_name():
    seq = sequence("cartpole-physics")
    assert 4 <= len(seq.tasks) <= 5 and seq.discrete and not seq.heterogeneous
    assert len({t.name for t in seq.tasks}) == len(seq.tasks)
    pend = sequence("pendulum-gravity", tasks=2)
    assert len(pend.tasks) == 2 and not pend.discrete and pend.action_bounds() == (-2.0, 2.0)
    assert [t.physics["g"] for t in pend.tasks] == [10.0, 4.0]


def test_heterogeneous_sequence_needs_pad_and_pads_with_zeros():
    with pytest.raises(ConfigError, match="observe different sizes.*`pad`") as err:
        sequence("classic-discrete")
    assert "\n" not in str(err.value)
    seq = sequence("classic-discrete", pad=True)
    assert seq.heterogeneous and seq.observation_size() == 6 and seq.action_sizes() == [2, 3, 3]
    obs, _ = seq.make(2, seed=0).reset()  # MountainCar: 2 values, then 4 zeros
    assert obs.shape == (6,) and not obs[2:].any() and obs[:2].any()


@pytest.mark.parametrize("spec, match", [
    (TaskSpec("Breakout-v5"), "unknown environment 'Breakout-v5'"),
    (TaskSpec("CartPole-v1", {"g": 3.0}), "CartPole-v1 has no physics parameter 'g'"),
    (TaskSpec("Pendulum-v1", {"g": math.nan}), "must be a finite number > 0"),
    (TaskSpec("Pendulum-v1", {"g": 0}), "must be a finite number > 0"),
])
def test_bad_tasks_are_one_line_errors(spec, match):
    with pytest.raises(ConfigError, match=match) as err:
        Sequence("mine", (spec,))
    assert "\n" not in str(err.value)


def test_unknown_sequence_and_task_count():
    with pytest.raises(ConfigError, match="unknown sequence 'cartpole'"):
        sequence("cartpole")
    with pytest.raises(ConfigError, match="`tasks` of cartpole-physics must be a whole number from 1 to 5"):
        sequence("cartpole-physics", tasks=0)


def test_mixed_action_kinds_are_refused():
    with pytest.raises(ConfigError, match="mixes discrete and continuous"):
        Sequence("mixed", (TaskSpec("CartPole-v1"), TaskSpec("Pendulum-v1")), obs_size=4)


@pytest.mark.filterwarnings("ignore")  # the simulation's own overflow warnings
def test_non_finite_observation_is_refused_by_name():
    env = TaskSpec("Pendulum-v1", {"max_speed": 1e308, "g": 1e308}).make(seed=0)
    env.reset()
    with pytest.raises(ConfigError, match="Pendulum-v1 .*non-finite") as err:
        for _ in range(50):
            env.step(np.full(1, 2.0, np.float32))
    assert "\n" not in str(err.value)


def test_experiment_names_the_registered_sequences():
    from lifelong.experiment.rl import SEQUENCE_NAMES

    assert list(SEQUENCE_NAMES) == SEQUENCES.names()
