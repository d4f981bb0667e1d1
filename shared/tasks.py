"""What a run optimises: the loss and accuracies of the V3S pretext and of action classification.

A task sees the network's outputs and the targets its batch's items carry (`v3s.shared.clips.ClipItem.targets`);
how clips become network input is the same for every task (`v3s.shared.spatial.network_input`).
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

from .labels import LabelSpace


class Task(Protocol):
    metric_names: tuple[str, ...]

    def loss(self, outputs: Any, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, correct counts (len(metric_names),)) for one batch; targets (B, k) int64 on the device."""

    def score(self, metrics: dict[str, float]) -> float:
        """The validation figure to maximise (selects best.pt)."""


class PretextTask:
    """V3S: cross-entropy of the spatial head plus cross-entropy of the temporal head (paper section 3.3).

    Args:
        label_space: the classes of both heads.
    """

    metric_names = ("acc_spatial", "acc_temporal")

    def __init__(self, label_space: LabelSpace) -> None:
        self.space = label_space

    def loss(self, outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """outputs: (spatial logits (B, n_spatial), temporal logits (B, n_temporal)); targets (B, 2)."""
        (s_logits, t_logits), s, t = outputs, targets[:, 0], targets[:, 1]
        loss = F.cross_entropy(s_logits, s) + F.cross_entropy(t_logits, t)
        correct = torch.stack([(s_logits.argmax(1) == s).sum(), (t_logits.argmax(1) == t).sum()])
        return loss, correct

    def score(self, metrics: dict[str, float]) -> float:
        """Mean accuracy over the heads that have more than one class."""
        accs = [metrics[name] for name, n in zip(self.metric_names, (self.space.n_spatial, self.space.n_temporal)) if n > 1]
        return sum(accs) / len(accs)


class ClassificationTask:
    """Action recognition: cross-entropy on the class label (paper section 4.3)."""

    metric_names = ("acc",)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """outputs: logits (B, n_classes); targets (B, 1)."""
        labels = targets[:, 0]
        return F.cross_entropy(outputs, labels), (outputs.argmax(1) == labels).sum().view(1)

    def score(self, metrics: dict[str, float]) -> float:
        return metrics["acc"]
