"""Accuracy and spike statistics over a whole split, for every member of a network at once (one network: K = 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..data import DataSplits
from ..devices import autocast
from ..snn import SNNOutput, SpikingNet, encode, spike_stats
from ..snn.accounting import input_is_spikes

EVAL_BATCH = 1024


def _per_member(out: SNNOutput | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """(logits [K, B, C], spike totals [L, K]) from a ``SpikingNet``'s output (K = 1) or a population's."""
    if isinstance(out, SNNOutput):
        return out.logits.unsqueeze(0), torch.stack(out.spikes).unsqueeze(1)
    return out


@torch.inference_mode()
def evaluate_members(model: nn.Module, layers: SpikingNet, data: DataSplits, split: str, cfg: TrainConfig,
                     amp: torch.dtype | None) -> tuple[list[float], list[dict[str, float]]]:
    """Per member: accuracy on ``data``'s ``split``, and ``spike_stats`` (``layers`` supplies the layer
    bookkeeping); one host sync.

    ``model`` is a ``SpikingNet`` or a ``population.PopulationNet``. The Poisson draws are the same at every
    evaluation (a generator seeded from ``cfg.seed``).
    """
    model.eval()
    gen = torch.Generator(device=data.device).manual_seed(cfg.seed + 1)
    correct = totals = None
    input_spikes = torch.zeros((), device=data.device)
    for x, y in data.eval_batches(split, EVAL_BATCH):
        x_seq = encode(x, cfg.timesteps, cfg.encoding, gen)
        with autocast(data.device, amp):
            logits, spikes = _per_member(model(x_seq))
        hits = (logits.argmax(2) == y).sum(1)
        correct = hits if correct is None else correct + hits
        totals = spikes.float() if totals is None else totals + spikes.float()
        if input_is_spikes(cfg.encoding, data.event_input):
            input_spikes += x_seq.sum()
    n = data.size(split)
    correct_k, totals_k, inp = correct.tolist(), totals.T.tolist(), float(input_spikes)
    stats = [spike_stats(t, n, layers, cfg.timesteps, cfg.encoding, input_spikes=inp, event_input=data.event_input)
             for t in totals_k]
    return [c / n for c in correct_k], stats
