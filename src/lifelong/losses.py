"""Loss functions shared by strategies and transfer methods."""

from __future__ import annotations

import torch
from torch import Tensor


def soft_cross_entropy(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """Cross-entropy of the student's softened distribution against the teacher's,
    −(1/B) sum_n sum_c softmax(teacher_n / T)_c · log softmax(student_n / T)_c
    (Hinton et al. 2015; Li & Hoiem 2017, eq. 3). The teacher gets no gradient."""
    target = torch.softmax(teacher.detach() / temperature, dim=1)
    return -(target * torch.log_softmax(student / temperature, dim=1)).sum(1).mean()
