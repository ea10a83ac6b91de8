"""Training-step throughput of the SNN paths: ours (fast, reference), a naive per-timestep loop, and optional peers.

    python benchmarks/trainer_throughput.py                         # both workloads, fp32 and bf16 lines
    python benchmarks/trainer_throughput.py --compare-peers         # also snnTorch and SpikingJelly, when installed
    python benchmarks/trainer_throughput.py --workload conv --precision bf16 --seconds 5

One step = forward + cross-entropy + lambda * mean-firing-rate term + backward + Adam step, on fixed random data
with direct encoding. Every measurement runs in its own subprocess, so timings do not share allocator state; on
CPU each child first applies ``devices.tune_cpu_allocator`` (as ``train`` does), whatever the path, peers included.
Workloads: conv = 3x32x32, conv64-LIF-pool-conv128-LIF-pool-linear10, T=4, batch 32;
mlp = 64-256-256-10, T=8, batch 64. LIF: v = 0.9 v + x, threshold 1, soft reset, detached reset.

Peers (``pip install 'sparsity-search[peers]'``; each is skipped with a line when not installed), idiomatically:
  snntorch      ``snn.Leaky`` (beta 0.9, fast_sigmoid slope 5, reset by subtraction) called per timestep in a
                Python loop, every layer T times. Differences: it fires at mem > threshold (ours >=) and, with its
                default ``reset_delay``, subtracts the threshold one step later; the same work per step.
  spikingjelly  multi-step mode (``functional.set_step_mode(net, 'm')``), its stateless layers fold T into the batch,
                ``LIFNode(tau=10, decay_input=False, v_reset=None, detach_reset=True)``, i.e. v = 0.9 v + x with
                soft detached reset, as ours; SpikingJelly 2.0 has no ``backend`` argument and dispatches to its
                registered ``sj_lif`` op (on CPU: a torch loop over T with a hand-written backward, state in fp32).
                Difference: surrogate ATan(alpha=2) (it has no fast sigmoid with this scaling; the surrogate only
                changes a few elementwise ops). The input is repeated over T (its idiom), so its first layer runs
                T times.
Each peer runs in two layouts: ``default`` (as its documentation writes it: contiguous NCHW tensors) at every
precision asked for, and ``careful``, as a user who tunes would run it: channels-last weights and inputs for the
conv net, at every precision asked for and also in bf16 autocast where the hardware has bf16 (CUDA, or a CPU with
AMX / AVX512-BF16). On the MLP, which has no channels, a careful run adds only a precision not run by default.
Ours is compared against the fastest peer run of all, whatever its layout and precision.

Every measurement runs in a fresh process whose compile caches (inductor's, Triton's, CUDA's: ``CACHE_VARS``)
point at a new empty folder, so ``first_step_s`` includes a cold ``torch.compile`` wherever one happens.

Reported per line:
  samples_per_s    training samples per second (steps * batch / wall time, after 3 warm-up steps)
  first_step_s     wall time of the first step with cold compile caches, including any torch.compile of the LIF
                   kernels (warm-up cost; the ``compile`` lines set it against one steady step)
  ratio_naive      samples_per_s / the naive loop's, same workload and precision
  ratio_peer       samples_per_s / the fastest peer's on the workload over all precisions and layouts run
  gflops           nominal training FLOPs / time: 6 * (weight-layer MACs per sample per timestep) * T * batch per
                   step, the work a per-timestep loop does; paths that skip work show an effective rate
  peak_gflops      a square matmul of the same dtype (2048 on CPU, 8192 on CUDA), measured in the same run
  saved_mb         bytes autograd holds for the backward after one forward (distinct storages; deterministic)
  peak_mem_mb      CPU: growth of the child's max RSS during the steps (coarse); CUDA: max_memory_allocated
  compiled         whether the child wrote anything to its compile caches (a torch.compile or Triton build ran)
The ``memory`` lines compare fast and reference at T=8 on each workload; ``accuracy`` trains the digits MLP in
fp32 and bf16 (bf16 passes within 0.5 points); ``summary`` takes the best precision that passes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsity_search.config import TrainConfig  # noqa: E402
from sparsity_search.devices import cpu_has_fast_bf16, tune_cpu_allocator  # noqa: E402
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


def _layers(workload: str) -> tuple[list[nn.Module | None], list[bool]]:
    """Plain torch layers for a workload's spec; None marks a LIF position."""
    mods: list[nn.Module | None] = []
    for layer in WORKLOADS[workload][3]:
        if layer[0] == "conv":
            mods.append(nn.Conv2d(layer[1], layer[2], 3, padding=1))
        elif layer[0] == "linear":
            mods.append(nn.Sequential(nn.Flatten(), nn.Linear(layer[1], layer[2])))
        elif layer[0] == "pool":
            mods.append(nn.AvgPool2d(2))
        else:
            mods.append(None)
    return mods, [m is None for m in mods]


class NaiveNet(nn.Module):
    """The textbook loop: every layer is called once per timestep, LIF state kept in Python lists."""

    def __init__(self, workload: str, timesteps: int) -> None:
        super().__init__()
        self.timesteps = timesteps
        mods, self.is_lif = _layers(workload)
        self.mods = nn.ModuleList(m if m is not None else nn.Identity() for m in mods)

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


def ours(workload: str, timesteps: int, implementation: str) -> tuple[nn.Module, Forward]:
    shape = WORKLOADS[workload][0]
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


def snntorch_net(workload: str, timesteps: int, channels_last: bool = False) -> tuple[nn.Module, Forward]:
    import snntorch
    from snntorch import surrogate

    naive = NaiveNet(workload, timesteps)  # same layers; snnTorch's Leaky replaces the hand-written LIF
    lifs = nn.ModuleList(snntorch.Leaky(beta=LEAK, threshold=THRESHOLD, spike_grad=surrogate.fast_sigmoid(SLOPE))
                         for is_lif in naive.is_lif if is_lif)
    model = nn.ModuleList([naive, lifs])

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        mems = [lif.init_leaky() for lif in lifs]
        logits, spikes, neurons = 0.0, 0.0, 0
        for _ in range(timesteps):
            h, k = x, 0
            for i, mod in enumerate(naive.mods):
                if naive.is_lif[i]:
                    h, mems[k] = lifs[k](h, mems[k])
                    spikes, neurons, k = spikes + h.sum(), neurons + h[0].numel(), k + 1
                else:
                    h = mod(h)
            logits = logits + h
        return logits / timesteps, spikes / (x.shape[0] * neurons)

    return model, forward


def spikingjelly_net(workload: str, timesteps: int, channels_last: bool = False) -> tuple[nn.Module, Forward]:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    mods: list[nn.Module] = []
    for spec in WORKLOADS[workload][3]:
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
        x_seq = x.unsqueeze(0).repeat(timesteps, *[1] * x.dim())
        if channels_last:  # [T*B, C, H, W] channels-last, viewed as [T, B, ...]: SpikingJelly folds T back in
            x_seq = x_seq.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, x_seq.shape[:2])
        logits = model(x_seq).mean(0)
        neurons = sum(s[0, 0].numel() for s in counts)
        return logits, torch.stack([s.sum() for s in counts]).sum() / (x.shape[0] * timesteps * neurons)

    return model, forward


PATHS: dict[str, Callable[..., tuple[nn.Module, Forward]]] = {
    "naive": lambda w, t, cl=False: (lambda m: (m, m))(NaiveNet(w, t)),
    "fast": lambda w, t, cl=False: ours(w, t, "fast"),
    "reference": lambda w, t, cl=False: ours(w, t, "reference"),
    "snntorch": snntorch_net,
    "spikingjelly": spikingjelly_net,
}
PEERS = ("snntorch", "spikingjelly")
# Layouts a peer runs in: its documented default, and what a careful user would do (channels-last for conv nets;
# the precision of a careful run is chosen in main: bf16 autocast where the hardware has bf16).
LAYOUTS = ("default", "careful")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def saved_bytes(forward: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for the backward while ``forward`` runs."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(storages.values())


def measure(workload: str, path: str, device: torch.device, precision: str, seconds: float,
            timesteps: int, layout: str = "default") -> dict[str, float]:
    """Run one path's training steps for ``seconds``; return samples/s and memory (see the docstring)."""
    torch.manual_seed(0)
    shape, _, batch, _ = WORKLOADS[workload]
    channels_last = layout == "careful" and len(shape) == 3
    model, forward = PATHS[path](workload, timesteps, channels_last)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, *shape, device=device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def loss_of() -> Tensor:
        with _autocast(device, precision):
            logits, rate = forward(x)
        return F.cross_entropy(logits.float(), y) + LAMBDA * rate.float()

    def step() -> None:
        loss = loss_of()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    _sync(device)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 2:
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
    saved_mb = saved_bytes(loss_of) / 2**20
    return {"samples_per_s": steps * batch / elapsed, "first_step_s": first, "step_s": elapsed / steps,
            "peak_mem_mb": mem_mb, "saved_mb": saved_mb}


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


# Every on-disk compile cache torch, Triton and CUDA keep: pointed at a fresh folder, a child's first step pays
# a cold compile, as a user's first run on a new machine (or after an upgrade) does.
CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "PYTORCH_KERNEL_CACHE_PATH", "CUDA_CACHE_PATH")


def _child(args: argparse.Namespace, workload: str, path: str, precision: str,
           timesteps: int | None = None, layout: str = "default") -> dict[str, float] | None:
    """One measurement in a fresh process with empty compile caches; adds ``compiled``: did anything compile."""
    timesteps = timesteps or WORKLOADS[workload][1]
    cmd = [sys.executable, __file__, "--child", f"{workload}:{path}:{timesteps}:{layout}", "--device", args.device,
           "--precision", precision, "--seconds", str(args.seconds), "--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="throughput_cache_") as cache:
        env = {**os.environ, **{var: str(Path(cache) / var.lower()) for var in CACHE_VARS}}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        compiled = any(p.is_file() for p in Path(cache).rglob("*"))
    if proc.returncode != 0:
        print(f"# workload={workload} path={path} layout={layout} precision={precision} failed: "
              f"{proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "compiled": compiled}


def accuracy_check(device: str, epochs: int) -> dict[str, float]:
    """Digits MLP test accuracy after the same training in fp32 and in bf16 (the trainer, same seed)."""
    from sparsity_search.trainer import train

    return {p: train(TrainConfig(epochs=epochs, hidden=[128], device=device, precision=p, seed=0))["test_accuracy"]
            for p in ("fp32", "bf16")}


def _installed_peers() -> list[str]:
    found = []
    for peer in PEERS:
        try:
            __import__(peer)
        except ImportError:
            print(f"# {peer} is not installed; skipped (pip install 'sparsity-search[peers]')")
            continue
        print(f"# {peer} {importlib.metadata.version(peer)}")
        found.append(peer)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["conv", "mlp", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="both")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--compare-peers", action="store_true", help="also time snnTorch and SpikingJelly")
    parser.add_argument("--memory-timesteps", type=int, default=8,
                        help="T of the fast-vs-reference memory lines; 0 = skip")
    parser.add_argument("--accuracy-epochs", type=int, default=5, help="digits epochs per precision; 0 = skip")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        if device.type == "cpu":
            tune_cpu_allocator()  # as the trainer does; for every path, peers included, so ratios compare the SNNs
        workload, path, timesteps, layout = args.child.split(":")
        print(json.dumps(measure(workload, path, device, args.precision, args.seconds, int(timesteps), layout)))
        return

    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    fast_bf16 = device.type == "cuda" or cpu_has_fast_bf16()
    print(f"# device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"hardware_bf16={'yes' if fast_bf16 else 'no'}", flush=True)
    peers = _installed_peers() if args.compare_peers else []
    careful = list(dict.fromkeys([*precisions, *(["bf16"] if fast_bf16 else [])]))  # a careful user's precisions
    peak = {p: peak_gflops(device, p) for p in (careful if peers else precisions)}
    workloads = ["conv", "mlp"] if args.workload == "all" else [args.workload]
    results: dict[tuple[str, str, str, str], dict[str, float]] = {}  # (workload, path, precision, layout)
    for workload in workloads:
        shape, timesteps, _, _ = WORKLOADS[workload]
        flops_per_sample = 6 * nominal_macs(workload) * timesteps
        runs = [(path, precision, "default") for precision in precisions for path in ["naive", "fast", "reference",
                                                                                    *peers]]
        # Without channels a careful run is a default run: only a precision not run yet adds anything.
        runs += [(peer, precision, "careful") for precision in careful for peer in peers
                 if len(shape) == 3 or precision not in precisions]
        for path, precision, layout in runs:
            result = _child(args, workload, path, precision, layout=layout)
            if result is not None:
                results[workload, path, precision, layout] = result
        best_peer = max(((r["samples_per_s"], f"{p}@{q}/{lay}") for (w, p, q, lay), r in results.items()
                         if w == workload and p in peers), default=None)
        for path, precision, layout in runs:
            r = results.get((workload, path, precision, layout))
            if r is None:
                continue
            naive = results.get((workload, "naive", precision, "default"))
            rate = r["samples_per_s"]
            line = f"workload={workload} path={path} "
            line += f"layout={layout} " if path in peers else ""
            line += f"precision={precision} samples_per_s={rate:.1f} first_step_s={r['first_step_s']:.2f} "
            if naive is not None:
                line += f"ratio_naive={rate / naive['samples_per_s']:.2f} "
            if best_peer is not None:
                line += f"ratio_peer={rate / best_peer[0]:.2f} "
            line += (f"gflops={rate * flops_per_sample / 1e9:.1f} peak_gflops={peak[precision]:.1f} "
                     f"saved_mb={r['saved_mb']:.1f} peak_mem_mb={r['peak_mem_mb']:.0f} "
                     f"compiled={'yes' if r['compiled'] else 'no'}")
            print(line, flush=True)
        for precision in precisions:
            r = results.get((workload, "fast", precision, "default"))
            if r is not None:
                print(f"compile workload={workload} path=fast precision={precision} cache=cold "
                      f"first_step_s={r['first_step_s']:.2f} step_s={r['step_s']:.4f} "
                      f"first_step_overhead_s={r['first_step_s'] - r['step_s']:.2f} "
                      f"compiled={'yes' if r['compiled'] else 'no'}", flush=True)
        if best_peer is not None:
            print(f"# workload={workload} fastest_peer={best_peer[1]} samples_per_s={best_peer[0]:.1f}", flush=True)

    for workload in workloads if args.memory_timesteps > 0 else []:
        for precision in precisions:
            mem = {path: _child(args, workload, path, precision, args.memory_timesteps)
                   for path in ("fast", "reference")}
            if None in mem.values():
                continue
            fast, ref = mem["fast"], mem["reference"]
            print(f"memory workload={workload} T={args.memory_timesteps} precision={precision} "
                  f"fast_saved_mb={fast['saved_mb']:.1f} reference_saved_mb={ref['saved_mb']:.1f} "
                  f"fast_peak_mem_mb={fast['peak_mem_mb']:.0f} reference_peak_mem_mb={ref['peak_mem_mb']:.0f} "
                  f"fast_le_reference={'yes' if fast['saved_mb'] <= ref['saved_mb'] else 'NO'}", flush=True)

    passing = ["fp32"]
    if args.accuracy_epochs > 0 and "bf16" in precisions:
        acc = accuracy_check(args.device, args.accuracy_epochs)
        delta = 100 * (acc["fp32"] - acc["bf16"])
        ok = delta <= 0.5  # one-sided: bf16 may not lose more than half a point
        print(f"accuracy dataset=digits model=mlp epochs={args.accuracy_epochs} fp32={acc['fp32']:.4f} "
              f"bf16={acc['bf16']:.4f} drop_points={delta:.2f} bf16_passes={'yes' if ok else 'no'}", flush=True)
        passing += ["bf16"] if ok else []
    targets = {"conv": 2.5, "mlp": 2.0}
    for workload in workloads:
        candidates = [(results[workload, "fast", p, "default"]["samples_per_s"], p) for p in precisions
                      if p in passing and (workload, "fast", p, "default") in results]
        if not candidates:
            continue
        rate, precision = max(candidates)
        against = [(r["samples_per_s"], f"{p}@{q}/{lay}") for (w, p, q, lay), r in results.items()
                   if w == workload and p in peers]
        if not against:
            against = [(r["samples_per_s"], f"naive@{q}") for (w, p, q, _), r in results.items()
                       if w == workload and p == "naive"]
        base = max(against)
        ratio = rate / base[0]
        print(f"summary workload={workload} path=fast precision={precision} samples_per_s={rate:.1f} "
              f"against={base[1]} against_samples_per_s={base[0]:.1f} ratio={ratio:.2f} target={targets[workload]} "
              f"met={'yes' if ratio >= targets[workload] else 'no'}", flush=True)


if __name__ == "__main__":
    main()
