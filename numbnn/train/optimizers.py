"""Build the optimizer and its per-iteration learning-rate schedule from a :class:`TrainConfig`.

- ``adam``: Adam with L2 decay in the gradient (ReActNet trains this way); beta1 0.9, beta2 ``config.beta2``;
- ``adamw``: AdamW, decoupled decay;
- ``sgd``: SGD with Nesterov momentum ``config.momentum``.

Weight decay reaches only the parameters ``config.decay_rule`` selects (:func:`numbnn.optim.split_decay`;
ReActNet: conv kernels only). The schedule runs over ``epochs * steps_per_epoch`` iterations and is stepped
after every optimizer step: ``linear`` decays to 0 (ReActNet), ``cosine`` anneals to 0, ``constant`` holds;
``warmup_epochs`` prefixes a linear ramp.
"""

from numbnn import optim
from numbnn.train.config import TrainConfig


def build_optimizer(model, config: TrainConfig, steps_per_epoch: int):
    """Return ``(optimizer, scheduler)`` for ``model``'s parameters."""
    groups = optim.split_decay(model.named_parameters(), config.weight_decay, config.decay_rule)
    if config.optimizer == "adam":
        optimizer = optim.Adam(groups, lr=config.lr, betas=(0.9, config.beta2))
    elif config.optimizer == "adamw":
        optimizer = optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))
    else:
        momentum = config.momentum
        optimizer = optim.SGD(groups, lr=config.lr, momentum=momentum, nesterov=momentum > 0)
    total = config.epochs * steps_per_epoch
    warm = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if config.schedule == "linear":
        schedule = optim.linear_to_zero(total - warm)
    elif config.schedule == "cosine":
        schedule = optim.cosine(total - warm)
    else:
        schedule = optim.constant()
    if warm > 0:
        schedule = optim.warmup(schedule, warm)
    return optimizer, optim.Scheduler(optimizer, schedule)
