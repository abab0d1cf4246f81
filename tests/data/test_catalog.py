"""Named data sets and class specs: `dataset("digits:0-4")`."""

import pytest
import torch

from lifelong.data import DATASETS, dataset, select_classes
from lifelong.data.catalog import normalisation, parse_classes
from lifelong.errors import ConfigError, DataError


def test_parse_classes():
    assert parse_classes("0-4") == [0, 1, 2, 3, 4]
    assert parse_classes("7,2,5-6") == [7, 2, 5, 6]
    for bad in ("", "a-3", "1,1", "3-x"):
        with pytest.raises(DataError):
            parse_classes(bad)


def test_select_classes_relabels_in_the_given_order(digits):
    sub = select_classes(digits, [7, 2])
    assert sub.class_names == ["7", "2"]
    for part, full in ((sub.train, digits.train), (sub.test, digits.test)):
        assert len(part) == int(((full.y == 7) | (full.y == 2)).sum())
        sevens = full.x[full.y == 7]
        assert torch.equal(part.x[part.y == 0], sevens)
    with pytest.raises(DataError, match="0 to 9"):
        select_classes(digits, [3, 10])


def test_dataset_specs(digits):
    whole = dataset("digits")
    assert whole.num_classes == 10 and len(whole.train) == len(digits.train)
    five = dataset("digits:5-9")
    assert five.name == "digits:5-9" and five.num_classes == 5
    assert set(five.train.y.tolist()) == set(range(5))
    with pytest.raises(ConfigError, match="digits"):
        dataset("digit:0-4")
    assert set(DATASETS.names()) >= {"fmnist", "digits", "mnist1d"}
    assert normalisation("fmnist:0-4")["scale"] == 1 / 255
