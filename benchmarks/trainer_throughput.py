"""Training-step throughput of the SNN paths: ours (fast, reference) against a naive per-timestep loop.

    python benchmarks/trainer_throughput.py                      # both workloads, fp32, ~3 s per measurement
    python benchmarks/trainer_throughput.py --workload conv --precision bf16 --compare-peers

One step = forward + cross-entropy + lambda * mean-firing-rate term + backward + Adam step, on fixed random data
with direct encoding. Every measurement runs in its own subprocess, so timings do not share allocator state.

Reported per line:
  samples_per_s    training samples per second (steps * batch / wall time, after 3 warm-up steps)
  ratio            samples_per_s / the naive loop's samples_per_s on the same workload, same run
  gflops           nominal training FLOPs / time: 6 * (weight-layer MACs per sample per timestep) * T * batch per
                   step (2 for the forward, 4 for the backward), the work a per-timestep loop does. Paths that
                   skip work (the first layer once under direct encoding) therefore show an effective rate.
  peak_gflops      a square matmul of the same dtype (2048 on CPU, 8192 on CUDA), measured in the same run
  peak_mem_mb      CPU: growth of the child process's max RSS (getrusage) from after setup to the end of the
                   timed steps, i.e. the memory the training steps added; CUDA: torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsity_search.config import TrainConfig  # noqa: E402
from sparsity_search.snn import build_model, encode  # noqa: E402

LEAK, THRESHOLD, SLOPE, LAMBDA = 0.9, 1.0, 5.0, 0.1
# name: (input shape, timesteps, batch, layers); ("conv", c_in, c_out), ("pool",), ("lif",), ("linear", in, out)
WORKLOADS = {
    "conv": ((3, 32, 32), 4, 32, [("conv", 3, 64), ("lif",), ("pool",), ("conv", 64, 128), ("lif",), ("pool",),
                                  ("linear", 128 * 8 * 8, 10)]),
    "mlp": ((64,), 8, 64, [("linear", 64, 256), ("lif",), ("linear", 256, 256), ("lif",), ("linear", 256, 10)]),
}
Forward = Callable[[Tensor], tuple[Tensor, Tensor]]  # x [B, ...] -> (logits, mean firing rate)


def nominal_macs(workload: str) -> int:
    """Weight-layer MACs per sample per timestep."""
    shape, _, _, layers = WORKLOADS[workload]
    macs, hw = 0, (shape[1] * shape[2] if len(shape) == 3 else 1)
    for layer in layers:
        if layer[0] == "conv":
            macs += hw * layer[1] * layer[2] * 9
        elif layer[0] == "pool":
            hw //= 4
        elif layer[0] == "linear":
            macs += layer[1] * layer[2]
    return macs


class _FastSigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        return grad / (1 + SLOPE * x.abs()) ** 2


class NaiveNet(nn.Module):
    """The textbook loop: every layer is called once per timestep, LIF state kept in Python lists."""

    def __init__(self, workload: str) -> None:
        super().__init__()
        _, self.timesteps, _, layers = WORKLOADS[workload]
        mods: list[nn.Module | None] = []
        for layer in layers:
            if layer[0] == "conv":
                mods.append(nn.Conv2d(layer[1], layer[2], 3, padding=1))
            elif layer[0] == "linear":
                mods.append(nn.Sequential(nn.Flatten(), nn.Linear(layer[1], layer[2])))
            elif layer[0] == "pool":
                mods.append(nn.AvgPool2d(2))
            else:
                mods.append(None)
        self.mods = nn.ModuleList(m if m is not None else nn.Identity() for m in mods)
        self.is_lif = [m is None for m in mods]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mems: list[Tensor | float] = [0.0] * len(self.mods)
        logits, spikes, neurons = 0.0, 0.0, 0
        for _ in range(self.timesteps):
            h = x
            for i, mod in enumerate(self.mods):
                if self.is_lif[i]:
                    mem = LEAK * mems[i] + h
                    h = _FastSigmoidSpike.apply(mem - THRESHOLD)
                    mems[i] = mem - THRESHOLD * h.detach()
                    spikes = spikes + h.sum()
                    neurons += h[0].numel()
                else:
                    h = mod(h)
            logits = logits + h
        return logits / self.timesteps, spikes / (x.shape[0] * neurons)


def ours(workload: str, implementation: str) -> tuple[nn.Module, Forward]:
    shape, timesteps, _, _ = WORKLOADS[workload]
    if workload == "conv":
        cfg = TrainConfig(model="convnet", channels=[64, 128], timesteps=timesteps, implementation=implementation)
    else:
        cfg = TrainConfig(model="mlp", hidden=[256, 256], timesteps=timesteps, implementation=implementation)
    model = build_model(cfg, shape, 10)
    total = sum(layer.neurons for layer in model.spiking_layers)

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        out = model(encode(x, timesteps, "direct"))
        return out.logits, torch.stack(out.spikes).sum() / (x.shape[0] * timesteps * total)

    return model, forward


def snntorch_net(workload: str) -> tuple[nn.Module, Forward]:
    import snntorch
    from snntorch import surrogate

    naive = NaiveNet(workload)  # same layers; snnTorch's Leaky replaces the hand-written LIF
    lifs = nn.ModuleList(snntorch.Leaky(beta=LEAK, threshold=THRESHOLD, spike_grad=surrogate.fast_sigmoid(SLOPE))
                         for is_lif in naive.is_lif if is_lif)
    model = nn.ModuleList([naive, lifs])

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        mems = [lif.init_leaky() for lif in lifs]
        logits, spikes, neurons = 0.0, 0.0, 0
        for _ in range(naive.timesteps):
            h, k = x, 0
            for i, mod in enumerate(naive.mods):
                if naive.is_lif[i]:
                    h, mems[k] = lifs[k](h, mems[k])
                    spikes, neurons, k = spikes + h.sum(), neurons + h[0].numel(), k + 1
                else:
                    h = mod(h)
            logits = logits + h
        return logits / naive.timesteps, spikes / (x.shape[0] * neurons)

    return model, forward


def spikingjelly_net(workload: str) -> tuple[nn.Module, Forward]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    _, timesteps, _, layers = WORKLOADS[workload]
    mods: list[nn.Module] = []
    for spec in layers:
        if spec[0] == "conv":
            mods.append(layer.Conv2d(spec[1], spec[2], 3, padding=1))
        elif spec[0] == "pool":
            mods.append(layer.AvgPool2d(2))
        elif spec[0] == "linear":
            mods += [layer.Flatten(), layer.Linear(spec[1], spec[2])]
        else:  # tau=10 without input decay: v = 0.9 v + x, soft reset, detached
            mods.append(neuron.LIFNode(tau=1 / (1 - LEAK), decay_input=False, v_reset=None, detach_reset=True,
                                       surrogate_function=surrogate.ATan()))
    model = nn.Sequential(*mods)
    functional.set_step_mode(model, "m")
    counts: list[Tensor] = []
    for mod in model:
        if isinstance(mod, neuron.LIFNode):
            mod.register_forward_hook(lambda m, i, out: counts.append(out))

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        functional.reset_net(model)
        counts.clear()
        logits = model(x.unsqueeze(0).repeat(timesteps, *[1] * x.dim())).mean(0)
        neurons = sum(s[0, 0].numel() for s in counts)
        return logits, torch.stack([s.sum() for s in counts]).sum() / (x.shape[0] * timesteps * neurons)

    return model, forward


PATHS: dict[str, Callable[[str], tuple[nn.Module, Forward]]] = {
    "naive": lambda w: (lambda m: (m, m))(NaiveNet(w)),
    "fast": lambda w: ours(w, "fast"),
    "reference": lambda w: ours(w, "reference"),
    "snntorch": snntorch_net,
    "spikingjelly": spikingjelly_net,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(workload: str, path: str, device: torch.device, precision: str, seconds: float) -> dict[str, float]:
    """Run one path's training steps for ``seconds``; return samples/s and peak memory (see the docstring)."""
    torch.manual_seed(0)
    shape, _, batch, _ = WORKLOADS[workload]
    model, forward = PATHS[path](workload)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        with _autocast(device, precision):
            logits, rate = forward(x)
        loss = F.cross_entropy(logits.float(), y) + LAMBDA * rate.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    _sync(device)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if steps % 4 == 0:
            _sync(device)
    _sync(device)
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        mem_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # ru_maxrss is in KiB
    return {"samples_per_s": steps * batch / elapsed, "peak_mem_mb": mem_mb}


def peak_gflops(device: torch.device, precision: str, seconds: float = 1.0) -> float:
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
        _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _child(args: argparse.Namespace, workload: str, path: str) -> dict[str, float] | None:
    cmd = [sys.executable, __file__, "--child", f"{workload}:{path}", "--device", args.device, "--precision",
           args.precision, "--seconds", str(args.seconds), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# workload={workload} path={path} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["conv", "mlp", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--compare-peers", action="store_true", help="also time snnTorch and SpikingJelly")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        workload, path = args.child.split(":")
        print(json.dumps(measure(workload, path, device, args.precision, args.seconds)))
        return

    paths = ["fast", "reference"]
    if args.compare_peers:
        for peer in ("snntorch", "spikingjelly"):
            try:
                __import__(peer)
                paths.append(peer)
            except ImportError:
                print(f"# {peer} is not installed; skipped")
    peak = peak_gflops(device, args.precision)
    print(f"# device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    for workload in (["conv", "mlp"] if args.workload == "all" else [args.workload]):
        _, timesteps, batch, _ = WORKLOADS[workload]
        flops_per_sample = 6 * nominal_macs(workload) * timesteps
        naive = _child(args, workload, "naive")
        if naive is None:
            continue
        for path in ["naive", *paths]:
            result = naive if path == "naive" else _child(args, workload, path)
            if result is None:
                continue
            rate = result["samples_per_s"]
            gflops = rate * flops_per_sample / 1e9
            print(f"workload={workload} path={path} precision={args.precision} samples_per_s={rate:.1f} "
                  f"naive_samples_per_s={naive['samples_per_s']:.1f} ratio={rate / naive['samples_per_s']:.2f} "
                  f"gflops={gflops:.1f} peak_gflops={peak:.1f} peak_mem_mb={result['peak_mem_mb']:.0f}")


if __name__ == "__main__":
    main()
