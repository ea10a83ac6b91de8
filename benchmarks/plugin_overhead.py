"""The cost of training a user's model through the toolkit: ``trainer.train`` on the snnTorch example against the
loop a snnTorch user writes by hand for the same model, data, batch size, T and optimizer.

    python benchmarks/plugin_overhead.py                    # 5 rounds of 4 epochs each, alternating the two
    python benchmarks/plugin_overhead.py --rounds 3 --epochs 3 --timesteps 8 --hidden 256

Both train ``studies/snntorch_mlp.py`` (flatten, Linear, snnTorch Leaky, Linear readout) on the digits training
split held in memory, with Adam, direct encoding (the image at every step) and the logits averaged over T, and then
measure validation accuracy in batches of ``training.EVAL_BATCH``, each epoch. The hand-written loop is the
snnTorch idiom: ``reset_mem()`` on every Leaky before each batch, ``for t in range(T): out = net(x)``,
cross-entropy, backward, step; it counts no spikes. Ours adds what the toolkit is for: forward hooks counting every
layer's spikes, the spike term in the loss (``lambda_max``, constant schedule) and the spike statistics of each
evaluation. One epoch = the training pass plus the validation pass, timed from one epoch's end to the next (the
first epoch of each run, with its warm-up, is left out). A third loop is the hand-written one with the same spike
term counted by hand (``hand_sparse``): what a user who wants the penalty writes. The loops alternate within one
process, ``--rounds`` times, so a busy machine slows them alike; ratios are of the medians (``ratio``: against the
plain loop, goal at most 1.10; ``ratio_vs_same_loss``: against the loop with the same loss).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sparsity_search import TrainConfig, train  # noqa: E402
from sparsity_search.data import DataSplits, load_data  # noqa: E402
from sparsity_search.devices import tune_cpu_allocator  # noqa: E402
from sparsity_search.factories import load_callable  # noqa: E402
from sparsity_search.training import EVAL_BATCH  # noqa: E402

STUDIES = str(ROOT / "studies")
CLOCK = time.perf_counter


def config(args: argparse.Namespace) -> TrainConfig:
    model = {"factory": "snntorch_mlp:build", "module_dir": STUDIES, "options": {"hidden": args.hidden}}
    return TrainConfig(model=model, epochs=args.epochs, timesteps=args.timesteps, batch_size=args.batch_size,
                       lr=args.lr, lambda_max=args.lambda_max, schedule="constant", lr_schedule="constant",
                       device="cpu", threads=args.threads)


def ours(cfg: TrainConfig, data: DataSplits) -> list[float]:
    """Seconds per epoch of ``trainer.train`` (from its per-epoch reports)."""
    stamps: list[float] = []
    train(cfg, report=lambda epoch, metrics: stamps.append(CLOCK()), data=data)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def by_hand(cfg: TrainConfig, data: DataSplits, sparse: bool = False) -> list[float]:
    """Seconds per epoch of the loop a snnTorch user writes: cross-entropy alone, or (``sparse``) with the same spike
    term as ours, counted by hand in an unrolled forward (``spk.sum()`` per step, as a user adds a spike penalty)."""
    import snntorch as snn

    torch.manual_seed(cfg.seed)
    net = load_callable("snntorch_mlp:build", STUDIES, "model")(data.input_shape, data.num_classes,
                                                                   hidden=cfg.model.options["hidden"])
    neurons = [m for m in net.modules() if isinstance(m, snn.SpikingNeuron)]
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    stamps = []
    for _ in range(cfg.epochs):
        net.train()
        for x, y in data.train_batches(cfg.batch_size, gen):
            for neuron in neurons:
                neuron.reset_mem()
            if sparse:
                logits, spikes = _unrolled(net, x, cfg.timesteps)
                rate = spikes / (len(y) * cfg.timesteps * sum(fc.out_features for fc in net.fcs))
                loss = F.cross_entropy(logits, y) + cfg.lambda_max * rate
            else:
                logits = sum(net(x) for _ in range(cfg.timesteps)) / cfg.timesteps
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in data.eval_batches("val", EVAL_BATCH):
                for neuron in neurons:
                    neuron.reset_mem()
                logits = sum(net(x) for _ in range(cfg.timesteps)) / cfg.timesteps
                correct += int((logits.argmax(1) == y).sum())
        stamps.append(CLOCK())
    return [b - a for a, b in zip(stamps, stamps[1:])]


def _unrolled(net: torch.nn.Module, x: torch.Tensor, timesteps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The example network's forward written out over T, summing its spikes: (logits averaged over T, spikes)."""
    total, spikes = 0, 0
    for _ in range(timesteps):
        h = x.flatten(1)
        for fc, lif in zip(net.fcs, net.lifs):
            h, _ = lif(fc(h))
            spikes = spikes + h.sum()
        total = total + net.readout(h)
    return total / timesteps, spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first is warm-up")
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lambda-max", type=float, default=0.5, help="ours: weight of the spike term")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of the wall clock (steadier on a busy machine)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    cfg = config(args)
    tune_cpu_allocator()  # as train() does, so both loops run with it
    torch.set_num_threads(args.threads)
    data = load_data(cfg)
    print(f"# snntorch_mlp hidden={args.hidden} T={args.timesteps} batch={args.batch_size} "
          f"train={data.size('train')} val={data.size('val')} threads={args.threads} "
          f"clock={'cpu' if args.cpu_time else 'wall'} torch={torch.__version__}")
    loops = [("hand", by_hand), ("hand_sparse", lambda c, d: by_hand(c, d, sparse=True)), ("ours", ours)]
    times: dict[str, list[float]] = {name: [] for name, _ in loops}
    for r in range(args.rounds):
        for name, run in loops[r % 3:] + loops[:r % 3]:  # each loop takes each position in turn
            epochs = run(cfg, data)
            times[name] += epochs
            print(f"round={r} loop={name} epoch_s={statistics.median(epochs):.4f}", flush=True)
    hand, sparse, mine = (statistics.median(times[name]) for name, _ in loops)
    print(f"summary hand_epoch_s={hand:.4f} hand_sparse_epoch_s={sparse:.4f} ours_epoch_s={mine:.4f} "
          f"ratio={mine / hand:.3f} (goal <= 1.10) ratio_vs_same_loss={mine / sparse:.3f}")


if __name__ == "__main__":
    main()
