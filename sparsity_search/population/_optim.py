"""Adam and SGD over stacked parameters with per-member hyperparameters, step for step equal to K torch optimizers.

Each update repeats the ops of torch's single-tensor (CPU default) ``Adam``/``SGD`` step, with the learning rate,
weight decay and momentum of member k applied as [K, 1, ...] tensors. Gradients of different members never mix:
each stacked parameter's slice k only receives member k's loss gradient.

Checkpoints hold each member's state in torch's own ``state_dict`` format (``member_state``, ``load_members``), as
``train``'s optimizer would hold it, so a member's checkpoint resumes alone or in a population.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..config import TrainConfig
from ..errors import ConfigError
from ..training import make_optimizer

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which the single trainer uses
EPS = 1e-8


class PopulationOptimizer:
    """``step(lrs)`` updates every stacked parameter; ``select(keep)`` drops members from the state."""

    def __init__(self, params: Sequence[Tensor], cfgs: Sequence[TrainConfig]) -> None:
        self.params = list(params)
        self.adam = cfgs[0].optimizer == "adam"
        self.steps = 0
        self.state: list[list[Tensor]] = [[] for _ in self.params]
        self.set_members(cfgs)

    def set_members(self, cfgs: Sequence[TrainConfig]) -> None:
        """The per-member weight decay and momentum of ``cfgs``."""
        dev = self.params[0].device
        self.weight_decay = torch.tensor([c.weight_decay for c in cfgs], device=dev)
        self.momentum = torch.tensor([c.momentum for c in cfgs], device=dev)
        self.any_decay = any(c.weight_decay != 0 for c in cfgs)
        self.all_momentum = all(c.momentum != 0 for c in cfgs)

    def select(self, keep: Tensor, cfgs: Sequence[TrainConfig], params: Sequence[Tensor]) -> None:
        """Keep the members at ``keep``; ``params`` are the network's re-stacked parameters."""
        self.params = list(params)
        self.state = [[s[keep].contiguous() for s in st] for st in self.state]
        self.set_members(cfgs)

    def copy_member(self, dst: int, src: int, cfgs: Sequence[TrainConfig]) -> None:
        """Member ``dst`` takes member ``src``'s state (moments or momentum buffers; the step count is shared) and
        ``cfgs``' per-member constants, on the device (PBT's exploit)."""
        with torch.no_grad():
            for st in self.state:
                for s in st:
                    s[dst] = s[src]
        self.set_members(cfgs)

    def member_state(self, k: int, cfg: TrainConfig, order: Sequence[int], lr: float) -> dict[str, Any]:
        """Member k's state as ``training.make_optimizer(cfg, ...)``'s state_dict; ``order[i]`` is the index in
        ``params`` of the member network's i-th parameter (torch numbers the state in that order)."""
        groups = make_optimizer(cfg, [torch.zeros(1) for _ in order], lr=lr).state_dict()["param_groups"]
        state: dict[int, dict[str, Tensor]] = {}
        for i, j in enumerate(order):
            st = self.state[j]
            if st and self.adam:
                state[i] = {"step": torch.tensor(float(self.steps)), "exp_avg": st[0][k].clone(),
                            "exp_avg_sq": st[1][k].clone()}
            elif st and cfg.momentum != 0:  # torch's SGD keeps no buffer without momentum
                state[i] = {"momentum_buffer": st[0][k].clone()}
        return {"state": state, "param_groups": groups}

    def load_members(self, states: Sequence[dict[str, Any]], order: Sequence[int]) -> None:
        """Stack the members' states (``member_state``'s format; a checkpoint of ``train``'s is the same)."""
        position = {j: i for i, j in enumerate(order)}
        keys = ("exp_avg", "exp_avg_sq") if self.adam else ("momentum_buffer",)
        if self.adam:
            steps = {float(entry["step"]) for s in states for entry in s["state"].values()}
            if len(steps) > 1:
                raise ConfigError(f"the members' checkpoints were taken after different steps ({sorted(steps)})",
                                  field="resume")
            self.steps = int(steps.pop()) if steps else 0
        for j, p in enumerate(self.params):
            entries = [s["state"].get(position[j]) for s in states]
            if all(e is None for e in entries):
                continue
            self.state[j] = [torch.stack([torch.zeros_like(p[0]) if e is None else e[key].to(p) for e in entries])
                             .contiguous() for key in keys]

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
