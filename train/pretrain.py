"""V3S pretraining (paper section 3 and 4.1.2): predict each clip's spatial and temporal transformation.

Loss = CE(spatial head) + CE(temporal head). Workers read the frames of the drawn temporal class (uint8) and the
homography of the drawn spatial class and crop; the warp and normalisation run on the device for the whole batch.
"""
from __future__ import annotations

import torch

from v3s.shared.checkpoint import build_network
from v3s.shared.clips import pretext_datasets, pretext_videos
from v3s.shared.config import PretrainConfig
from v3s.shared.labels import label_space_from
from v3s.shared.models import check_clip_shape
from v3s.shared.runtime import default_workers
from v3s.shared.tasks import PretextTask

from .defaults import Log, batch_size, resolve_out, resolve_source, validation_videos
from .distributed import DistInfo, run_distributed
from .monitor import build_monitor
from .runner import RunResult, RunSpec, fit


# The paper's values (section 4.1.2), used where the options do not say otherwise.
PAPER_VAL_VIDEOS, PAPER_BATCH = 800, 32


def pretrain(config: PretrainConfig, log: Log | None = None) -> RunResult:
    """Run V3S pretraining, or continue the run its folder holds; under torchrun every rank calls this.

    Args:
        config: the options; None fields take the defaults `v3s.train.defaults` chooses.
        log: receives one line per choice and about continuing (default: stderr, on rank 0).
    See docs/training.md.
    """
    return run_distributed(_pretrain, config, log)


def _pretrain(config: PretrainConfig, info: DistInfo, log: Log) -> RunResult:
    space = label_space_from(config.transforms)
    check_clip_shape(config.backbone, config.clip_len, config.clip_size)
    config, store = resolve_source(config, log)
    config = resolve_out(config, log)
    usable, _ = pretext_videos(store, config, space)
    config = config.replace(label_space=space.to_dict(),
                            workers=default_workers() if config.workers is None else config.workers)
    config = config.replace(val_videos=validation_videos(config.val_videos, len(usable), PAPER_VAL_VIDEOS, log))
    train, val = pretext_datasets(store, config, space)
    config = config.replace(batch_size=batch_size(config.batch_size, PAPER_BATCH, len(train), info.world_size, log))
    torch.manual_seed(config.seed)
    model = build_network(config)
    spec = RunSpec(kind="v3s-pretrain", model=model, param_groups=[{"params": list(model.parameters())}],
                   task=PretextTask(space), train_set=train, val_set=val,
                   monitor=lambda total, workers: build_monitor(store, config, total, workers, log))
    return fit(config, spec, info, log)
