"""Heads on pooled backbone features: the V3S multi-task head and a classifier for finetuning."""
from __future__ import annotations

from torch import Tensor, nn


def _check(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")


class V3SHead(nn.Module):
    """The paper's multi-task head: two FC layers on the same feature, one per transformation family.

    Args:
        feature_dim: size of the backbone's pooled feature.
        n_spatial: spatial classes (identity + spatial scales + spatial projections).
        n_temporal: temporal classes (temporal scales + temporal projections).
        dropout: dropout on the feature before both FC layers.
    """

    def __init__(self, feature_dim: int, n_spatial: int, n_temporal: int, dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("n_spatial", n_spatial), ("n_temporal", n_temporal)):
            _check(name, value)
        _check_dropout(dropout)
        self.dropout = nn.Dropout(dropout)
        self.spatial = nn.Linear(feature_dim, n_spatial)
        self.temporal = nn.Linear(feature_dim, n_temporal)

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor]:
        """Args: feat (B, feature_dim). Returns (spatial logits (B, n_spatial), temporal logits (B, n_temporal))."""
        feat = self.dropout(feat)
        return self.spatial(feat), self.temporal(feat)


class ClassifierHead(nn.Module):
    """Dropout then one FC layer, for finetuning on action classes.

    Args:
        feature_dim: size of the backbone's pooled feature.
        n_classes: number of classes.
        dropout: dropout on the feature before the FC layer.
    """

    def __init__(self, feature_dim: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check("feature_dim", feature_dim)
        _check("n_classes", n_classes)
        _check_dropout(dropout)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_dim, n_classes)

    def forward(self, feat: Tensor) -> Tensor:
        """Args: feat (B, feature_dim). Returns logits (B, n_classes)."""
        return self.fc(self.dropout(feat))


class VideoModel(nn.Module):
    """Backbone plus head, so that state_dict keys read "backbone.*" and "head.*".

    Args:
        backbone: maps (B, 3, T, H, W) clips to (B, feature_dim).
        head: maps (B, feature_dim) to the head's output.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor):
        """Args: x (B, 3, T, H, W). Returns the head's output for the pooled features."""
        return self.head(self.backbone(x))
