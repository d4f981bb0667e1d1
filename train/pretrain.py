"""V3S pretraining (paper section 3 and 4.1.2): predict each clip's spatial and temporal transformation.

Loss = CE(spatial head) + CE(temporal head). Workers read the frames of the drawn temporal class (uint8) and the
homography of the drawn spatial class and crop; the warp and normalisation run on the device for the whole batch.
"""
from __future__ import annotations

import torch

from v3s.shared.checkpoint import build_network
from v3s.shared.clips import pretext_datasets
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import label_space_from
from v3s.shared.runtime import default_workers
from v3s.shared.store import Store
from v3s.shared.tasks import PretextTask

from .distributed import DistInfo, run_distributed
from .runner import RunResult, RunSpec, fit


def pretrain(config: PretrainConfig) -> RunResult:
    """Run (or resume) V3S pretraining; under torchrun every rank calls this. See docs/training.md."""
    return run_distributed(_pretrain, config)


def _pretrain(config: PretrainConfig, info: DistInfo) -> RunResult:
    store = Store(config.store)
    space = label_space_from(config.transforms)
    config = config.replace(label_space=space.to_dict(),
                            workers=default_workers() if config.workers is None else config.workers)
    train, val = pretext_datasets(store, config, space)
    torch.manual_seed(config.seed)
    model = build_network(config)
    spec = RunSpec(kind="v3s-pretrain", model=model, param_groups=[{"params": list(model.parameters())}],
                   task=PretextTask(space), train_set=train, val_set=val)
    return fit(config, spec, info)
