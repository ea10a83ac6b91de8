"""User model files as a user writes them, one per library, written to a temporary folder and imported through
``model.module_dir``. Each network also counts its own spikes explicitly (``self.counts[layer] += spikes.sum()``,
detached) so tests can hold the hooks' counts against it. Module names are unique: Python caches imports by name.
"""

from __future__ import annotations

from pathlib import Path

_COUNT = '''
def count(counts, name, spikes):
    counts[name] = counts.get(name, 0.0) + float(spikes.detach().sum())
'''

FILES = {
    # snnTorch, one timestep per call: a Leaky layer with graded spikes (factor 2) and a Synaptic layer (3 outputs)
    "ut_snntorch_single": '''
import torch, torch.nn as nn, snntorch as snn
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, 24), snn.Leaky(beta=0.8, graded_spikes_factor=2.0)
        self.fc2, self.syn2 = nn.Linear(24, 16), snn.Synaptic(alpha=0.7, beta=0.8)
        self.fc3 = nn.Linear(16, n_out)
        self.counts = {}

    def forward(self, x):
        spk1, _ = self.lif1(self.fc1(x.flatten(1)))
        spk2, _, _ = self.syn2(self.fc2(spk1))
        count(self.counts, "lif1", spk1 / 2.0)
        count(self.counts, "syn2", spk2)
        return self.fc3(spk2)

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
''',
    # snnTorch tutorial style: forward loops over time and returns (spk_rec, mem_rec); a StateLeaky with
    # output=False (membrane only) is not a spiking layer
    "ut_snntorch_tutorial": '''
import torch, torch.nn as nn, snntorch as snn
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, 20), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(20, n_out), snn.Leaky(beta=0.9)
        self.trace = snn.StateLeaky(beta=0.9, channels=n_out, output=False)
        self.counts = {}

    def forward(self, x_seq):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec = []
        for x in x_seq:
            spk1, mem1 = self.lif1(self.fc1(x.flatten(1)), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            count(self.counts, "lif1", spk1)
            count(self.counts, "lif2", spk2)
            spk_rec.append(spk2)
        spk_rec = torch.stack(spk_rec)
        return spk_rec, self.trace(spk_rec)

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
''',
    # SpikingJelly, single-step nodes (step_mode 's', the default)
    "ut_sj_single": '''
import torch, torch.nn as nn
from spikingjelly.activation_based import layer, neuron
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.lif = layer.Linear(n_in, 24), neuron.LIFNode(tau=2.0)
        self.fc2, self.if_ = layer.Linear(24, 12), neuron.IFNode()
        self.fc3 = layer.Linear(12, n_out)
        self.counts = {}

    def forward(self, x):
        s1 = self.lif(self.fc1(x.flatten(1)))
        s2 = self.if_(self.fc2(s1))
        count(self.counts, "lif", s1)
        count(self.counts, "if_", s2)
        return self.fc3(s2)

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
''',
    # SpikingJelly, multi-step: conv -> LIF -> pool -> linear -> PLIF -> linear -> a non-spiking LIF readout (voltage)
    "ut_sj_multi": '''
import torch, torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, channels, n_out):
        super().__init__()
        self.conv, self.lif = layer.Conv2d(channels, 6, 3, padding=1), neuron.LIFNode(tau=2.0)
        self.pool, self.flat = layer.AvgPool2d(2), layer.Flatten()
        self.fc1, self.plif = layer.Linear(6 * 4 * 4, 16), neuron.ParametricLIFNode()
        self.fc2, self.readout = layer.Linear(16, n_out), neuron.NonSpikingLIFNode()
        functional.set_step_mode(self, "m")
        self.counts = {}

    def forward(self, x_seq):
        s1 = self.lif(self.conv(x_seq))
        s2 = self.plif(20 * self.fc1(self.flat(self.pool(s1))))
        count(self.counts, "lif", s1)
        count(self.counts, "plif", s2)
        return self.readout(self.fc2(s2))

def build(input_shape, num_classes):
    return Net(input_shape[0], num_classes)
''',
    # norse: a LIFCell stepped in forward, a LIF module over the sequence, a leaky-integrator readout (voltage)
    "ut_norse": '''
import torch, torch.nn as nn
import norse.torch as norse
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.cell = nn.Linear(n_in, 20), norse.LIFCell()
        self.fc2, self.lif = nn.Linear(20, 12), norse.LIF()
        self.fc3, self.li = nn.Linear(12, n_out), norse.LI()
        self.counts = {}

    def forward(self, x_seq):
        state, zs = None, []
        for x in x_seq:
            z, state = self.cell(20 * self.fc1(x.flatten(1)), state)
            zs.append(z)
        z1 = torch.stack(zs)
        z2, _ = self.lif(20 * self.fc2(z1))
        count(self.counts, "cell", z1)
        count(self.counts, "lif", z2)
        v, _ = self.li(self.fc3(z2))
        return v

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
''',
    # sinabs: batch-first time, IAF with multi-spike counts, LIF, and a non-spiking ExpLeak (stateful, not counted)
    "ut_sinabs": '''
import torch, torch.nn as nn
import sinabs.layers as sl
''' + _COUNT + '''
class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.iaf = nn.Linear(n_in, 20), sl.IAF()
        self.fc2, self.lif = nn.Linear(20, 12), sl.LIF(tau_mem=5.0)
        self.fc3, self.leak = nn.Linear(12, n_out), sl.ExpLeak(tau_mem=5.0)
        self.counts = {}

    def forward(self, x_seq):
        x = x_seq.flatten(2).transpose(0, 1)  # (B, T, N)
        s1 = self.iaf(3 * self.fc1(x))
        s2 = self.lif(3 * self.fc2(s1))
        count(self.counts, "iaf", s1)
        count(self.counts, "lif", s2)
        return self.leak(self.fc3(s2)).transpose(0, 1)

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)
''',
    # plain torch: a neuron class the user names in model.spiking, with a reset() for its state
    "ut_plain": '''
import torch, torch.nn as nn
''' + _COUNT + '''
class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + 5 * x.abs()) ** 2

class StepNeuron(nn.Module):
    def __init__(self, leak=0.9):
        super().__init__()
        self.leak, self.v = leak, None

    def reset(self):
        self.v = None

    def forward(self, x):
        v = x if self.v is None else self.leak * self.v + x
        spikes = Spike.apply(v - 1.0)
        self.v = v - spikes.detach()
        return spikes

class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.n1 = nn.Linear(n_in, 24), StepNeuron()
        self.fc2, self.n2 = nn.Linear(24, 12), StepNeuron()
        self.fc3 = nn.Linear(12, n_out)
        self.counts = {}

    def forward(self, x):
        s1 = self.n1(2 * self.fc1(x.flatten(1)))
        s2 = self.n2(2 * self.fc2(s1))
        count(self.counts, "n1", s1)
        count(self.counts, "n2", s2)
        return self.fc3(s2)

def build(input_shape, num_classes):
    return Net(int(torch.tensor(input_shape).prod()), num_classes)

class StatelessNeuron(nn.Module):
    def forward(self, x):
        return Spike.apply(x - 0.5)

class Residual(nn.Module):
    """conv -> n1 -> dilated conv -> n2; n1 + n2 -> grouped strided conv -> n3 -> pool -> linear."""

    def __init__(self, n_out):
        super().__init__()
        self.c1, self.n1 = nn.Conv2d(1, 4, 3, padding=1), StatelessNeuron()
        self.c2, self.n2 = nn.Conv2d(4, 4, 3, padding=2, dilation=2), StatelessNeuron()
        self.c3, self.n3 = nn.Conv2d(4, 8, (3, 1), stride=2, padding=(1, 0), groups=2), StatelessNeuron()
        self.fc = nn.Linear(8 * 2 * 2, n_out)

    def forward(self, x):
        s1 = self.n1(self.c1(x))
        s2 = self.n2(self.c2(s1))
        s3 = self.n3(self.c3(s1 + s2))
        return self.fc(nn.functional.avg_pool2d(s3, 2).flatten(1))

def residual(input_shape, num_classes):
    return Residual(num_classes)
''',
}


def write_user_files(folder: Path) -> Path:
    """Write every file of ``FILES`` into ``folder``; return it (the ``module_dir``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in FILES.items():
        (folder / f"{name}.py").write_text(source.lstrip())
    return folder
