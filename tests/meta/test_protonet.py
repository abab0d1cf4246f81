import pytest
import torch
from torch import nn

from lifelong.data.episodes import Episodes
from lifelong.errors import ConfigError
from lifelong.meta import ProtoNet, TaskSet, evaluate, fewshot
from lifelong.models import Net, mlp, pre_logits, resnet18

from .conftest import regression_tasks


def identity_net() -> Net:
    return Net(nn.Identity(), nn.Linear(2, 3))  # the embedding is the input itself


def test_logits_are_negative_squared_distances_to_class_means():
    tasks = TaskSet("toy", "classification", None, None, (2,), 3)
    learner = ProtoNet(identity_net(), tasks)
    xs = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [1.0, 1.0]]])
    ys = torch.tensor([[0, 0, 1, 2]])
    xq = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    out = learner.predict(Episodes(xs, ys, xq, torch.tensor([[0, 1]])), steps=0)
    protos = torch.tensor([[1.0, 0.0], [0.0, 4.0], [1.0, 1.0]])  # Eq. 1
    expected = -torch.cdist(xq[0], protos).pow(2)
    assert torch.allclose(out[0], expected)
    assert out[0].argmax(1).tolist() == [0, 1]


def test_support_and_query_are_embedded_in_one_forward_pass():
    """With BatchNorm in the embedding, support and query are normalised together (Snell et al.'s code
    embeds their concatenation): the logits are those of embedding the whole episode at once."""
    torch.manual_seed(0)
    model = Net(nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4)), nn.Linear(4, 3))
    learner = ProtoNet(model, TaskSet("toy", "classification", None, None, (2,), 3))
    xs, ys = torch.randn(1, 3, 2), torch.tensor([[0, 1, 2]])  # 1 shot: BatchNorm over 3 support samples alone
    xq = torch.randn(1, 6, 2) + 2.0
    f = model.features(torch.cat([xs[0], xq[0]]))
    expected = -torch.cdist(f[3:], f[:3]).pow(2)  # 1 shot: the prototypes are the support embeddings
    out = learner.predict(Episodes(xs, ys, xq, torch.zeros(1, 6, dtype=torch.long)), steps=0)
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_protonet_learns_unseen_classes(tagged_ds):
    torch.manual_seed(0)
    tasks = fewshot(tagged_ds, ways=2, shots=1, queries=5, classes="0-5//6-9", seed=0)
    learner = ProtoNet(mlp(2, 8, (16,)), tasks, meta_lr=1e-2)
    learner.meta_train(100)
    # feature 0 (the class id) separates classes; feature 1 (a sample id) is noise to be ignored
    assert evaluate(learner, steps=0, n_tasks=200)["mean"] > 0.9


def test_refuses_regression():
    with pytest.raises(ConfigError, match="classification tasks only"):
        ProtoNet(identity_net(), regression_tasks())


def test_the_embedding_of_a_pooling_model_is_its_pre_logits():
    """resnet18's forward_features are unpooled maps: the prototypes are means of the pooled pre-logits."""
    torch.manual_seed(0)
    model = resnet18(3, in_channels=1)
    learner = ProtoNet(model, TaskSet("toy", "classification", None, None, (1, 4, 4), 3))
    xs, ys, xq = torch.randn(1, 3, 1, 4, 4), torch.tensor([[0, 1, 2]]), torch.randn(1, 4, 1, 4, 4)
    f = pre_logits(model, torch.cat([xs[0], xq[0]]))
    expected = -torch.cdist(f[3:], f[:3]).pow(2)  # 1 shot: the prototypes are the support embeddings
    out = learner.predict(Episodes(xs, ys, xq, torch.zeros(1, 4, dtype=torch.long)), steps=0)
    assert torch.allclose(out[0], expected, atol=1e-4)
