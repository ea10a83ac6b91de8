"""Adam and SGD over stacked parameters with per-member hyperparameters, step for step equal to K torch optimizers.

Each update repeats the ops of torch's single-tensor (CPU default) ``Adam``/``SGD`` step, with the learning rate,
weight decay and momentum of member k applied as [K, 1, ...] tensors. Gradients of different members never mix:
each stacked parameter's slice k only receives member k's loss gradient.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..config import TrainConfig

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which the single trainer uses
EPS = 1e-8


class PopulationOptimizer:
    """``step(lrs)`` updates every stacked parameter; ``select(keep)`` drops members from the state."""

    def __init__(self, params: Sequence[Tensor], cfgs: Sequence[TrainConfig]) -> None:
        self.params = list(params)
        self.adam = cfgs[0].optimizer == "adam"
        self.steps = 0
        self.state: list[list[Tensor]] = [[] for _ in self.params]
        self._set(cfgs)

    def _set(self, cfgs: Sequence[TrainConfig]) -> None:
        dev = self.params[0].device
        self.weight_decay = torch.tensor([c.weight_decay for c in cfgs], device=dev)
        self.momentum = torch.tensor([c.momentum for c in cfgs], device=dev)
        self.any_decay = any(c.weight_decay != 0 for c in cfgs)
        self.all_momentum = all(c.momentum != 0 for c in cfgs)

    def select(self, keep: Tensor, cfgs: Sequence[TrainConfig], params: Sequence[Tensor]) -> None:
        """Keep the members at ``keep``; ``params`` are the network's re-stacked parameters."""
        self.params = list(params)
        self.state = [[s[keep].contiguous() for s in st] for st in self.state]
        self._set(cfgs)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @staticmethod
    def _col(v: Tensor, like: Tensor) -> Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, lrs: Tensor) -> None:
        self.steps += 1
        for p, st in zip(self.params, self.state):
            grad = p.grad
            if self.any_decay:
                grad = grad.addcmul(p, self._col(self.weight_decay, p))
            if self.adam:
                self._adam(p, grad, st, self._col(lrs, p))
            else:
                self._sgd(p, grad, st, self._col(lrs, p))

    def _adam(self, p: Tensor, grad: Tensor, st: list[Tensor], lr: Tensor) -> None:
        beta1, beta2 = BETAS
        if not st:
            st += [torch.zeros_like(p), torch.zeros_like(p)]
        exp_avg, exp_avg_sq = st
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** self.steps
        bias_correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(EPS)
        p.addcdiv_(exp_avg * (-lr / bias_correction1), denom)

    def _sgd(self, p: Tensor, grad: Tensor, st: list[Tensor], lr: Tensor) -> None:
        momentum = self._col(self.momentum, p)
        if not st:
            st.append(grad.clone())
        else:
            st[0].mul_(momentum).add_(grad)
        update = st[0] if self.all_momentum else torch.where(momentum != 0, st[0], grad)
        p.sub_(update * lr)
