"""A nearest-class-mean head on frozen features, for one or a few labelled samples per class.

Wang, Chao, Weinberger & van der Maaten 2019, "SimpleShot: Revisiting Nearest-Neighbor Classification
for Few-Shot Learning" (arXiv:1911.04623), section 3: each feature vector f is centred with the mean
f_bar of the source (base-class) training features and L2-normalised, z = (f - f_bar) / ||f - f_bar||_2
("CL2N"); a class is represented by the mean mu_c of its normalised support features and a sample goes
to the nearest mean in Euclidean distance. Since ||z - mu_c||^2 = ||z||^2 - 2 mu_c.z + ||mu_c||^2 and
||z||^2 is the same for every class, that is the argmax of the linear logits 2 mu_c.z - ||mu_c||^2
(Snell et al. 2017, section 2.4), so the head is `CL2N` followed by an `nn.Linear` holding
W_c = 2 mu_c, b_c = -||mu_c||^2: it drops into any model of the backbone contract (`set_head`).
No hyper-parameters and no training; without a source mean (f_bar = None) it is SimpleShot's "L2N".
As the starting head of fine-tuning (`lifelong transfer --method imprint`), L2N on the model's
`forward_features` is weight imprinting (Qi, Brown & Lowe 2018, "Low-Shot Learning with Imprinted
Weights", CVPR): the new classes' weights from the normalised class means, in this linear form rather
than the paper's cosine classifier with normalised weights and a scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Features
from ..errors import DataError
from ..models import CL2N


def nearest_mean_head(train: Features, num_classes: int, centre: Tensor | None = None) -> nn.Sequential:
    """SimpleShot's classifier of the cached features `train` as a head: CL2N, then a Linear whose argmax is
    the nearest class mean of the normalised features (see the module docstring)."""
    present = torch.bincount(train.y, minlength=num_classes) > 0
    if not present.all():
        missing = (~present).nonzero().flatten().tolist()
        raise DataError(f"the nearest-mean head needs a sample of every class, classes {missing} have none")
    norm = CL2N(centre).to(train.x.device)
    with torch.no_grad():
        z = norm(train.x)
        onehot = F.one_hot(train.y, num_classes).to(z.dtype)
        means = (onehot.T @ z) / onehot.sum(0)[:, None]
        linear = nn.Linear(z.shape[1], num_classes).to(z.device, z.dtype)
        linear.weight.copy_(2 * means)
        linear.bias.copy_(-means.pow(2).sum(1))
    return nn.Sequential(norm, linear)
