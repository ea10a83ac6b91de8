"""A user's model factory gone wrong: each case is one ``ConfigError`` naming the field, found when the model is built
(``check_user_model``, before anything is stored), and exit 2 with one line through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import cli
from sparsity_search import TrainConfig
from sparsity_search.errors import ConfigError
from sparsity_search.snn import check_user_model

MODELS = '''
import torch, torch.nn as nn

class Fire(nn.Module):
    def forward(self, x):
        return x + ((x > 0).float() - x).detach()

class Gate(nn.Module):
    def forward(self, x):
        return torch.relu(x)

class Net(nn.Module):
    def __init__(self, n_in, width, n_out, out):
        super().__init__()
        self.fc1, self.fire, self.fc2, self.out = nn.Linear(n_in, width), Fire(), nn.Linear(width, n_out), out

    def forward(self, x):
        logits = self.fc2(self.fire(self.fc1(x.flatten(1))))
        if self.out == "rank3":
            return logits.unsqueeze(0).expand(3, *logits.shape)
        if self.out == "classes":
            return logits[:, :-1]
        if self.out == "list":
            return [[logits]]
        return logits, "ignored"

def build(input_shape, num_classes, width=8, out="ok"):
    return Net(64, width, num_classes, out)

def anything(input_shape, num_classes, **options):
    return Net(64, 8, num_classes, "ok")

def raises(input_shape, num_classes):
    raise ValueError("width must be even")

def returns_dict(input_shape, num_classes):
    return {"fc": nn.Linear(64, num_classes)}

def no_neurons(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), Gate(), nn.Linear(16, num_classes))

NOT_CALLABLE = 3
A_LAYER = nn.Linear(2, 2)

class Plain:
    pass
'''

SNNTORCH = '''
import torch.nn as nn, snntorch as snn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.lif, self.out = nn.Linear(64, 8), snn.Leaky(beta=0.9), nn.Linear(8, 10)

    def forward(self, x_seq):
        spk, _ = self.lif(self.fc(x_seq.flatten(2)))  # the whole sequence in one call of a single-step neuron
        return self.out(spk)

def build(input_shape, num_classes):
    return Net()
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad_models")
    (path / "ue_models.py").write_text(MODELS)
    (path / "ue_snntorch.py").write_text(SNNTORCH)
    (path / "ue_syntax.py").write_text("def build(input_shape, num_classes):\n    return 1\n\nx = = 2\n")
    (path / "ue_imports.py").write_text("import no_such_package_here\n")
    return path


def _check(folder: Path, factory: str, **model: Any) -> None:
    cfg = TrainConfig(model={"factory": factory, "module_dir": str(folder), **model}, timesteps=3)
    check_user_model(cfg, (1, 8, 8), 10)


FIRE = ["ue_models:Fire"]
CASES = {
    "module missing": ({"factory": "ue_nowhere:build"}, "model.factory", ["no module named 'ue_nowhere'"]),
    "attribute missing": ({"factory": "ue_models:biuld"}, "model.factory", ["has no attribute 'biuld'"]),
    "syntax error": ({"factory": "ue_syntax:build"}, "model.factory", ["ue_syntax.py, line 4"]),
    "import fails": ({"factory": "ue_imports:build"}, "model.factory", ["no_such_package_here"]),
    "not callable": ({"factory": "ue_models:NOT_CALLABLE"}, "model.factory", ["is not a function or class (its type: int)"]),
    "factory raises": ({"factory": "ue_models:raises"}, "model.factory",
                       ["ue_models:raises raised at", "ue_models.py:", "ValueError: width must be even"]),
    "not a module": ({"factory": "ue_models:returns_dict"}, "model.factory",
                     ["returned a dict, not a torch.nn.Module"]),
    "logits [T, B, C] in single mode": ({"factory": "ue_models:build", "options": {"out": "rank3"}, "spiking": FIRE},
                                        "model.factory", ["shape [3, 2, 10]", "needs model.step_mode: multi"]),
    "wrong class count": ({"factory": "ue_models:build", "options": {"out": "classes"}, "spiking": FIRE},
                          "model.factory", ["shape [2, 9]", "10 classes"]),
    "not a tensor": ({"factory": "ue_models:build", "options": {"out": "list"}, "spiking": FIRE}, "model.factory",
                     ["returned a list; expected logits"]),
    "unknown option": ({"factory": "ue_models:build", "options": {"depth": 3}}, "model.depth",
                       ["takes no option 'depth'", "width, out"]),
    "no neurons": ({"factory": "ue_models:no_neurons"}, "model.factory",
                   ["Sequential, Flatten, Linear, Gate", "model.spiking: [ue_models:Gate]"]),
    "spiking class missing": ({"factory": "ue_models:build", "spiking": ["ue_models:Fyre"]}, "model.spiking",
                              ["has no attribute 'Fyre'"]),
    "spiking not a Module class": ({"factory": "ue_models:build", "spiking": ["ue_models:Plain"]}, "model.spiking",
                                   ["ue_models:Plain is a class but not a torch.nn.Module"]),
    "spiking an instance": ({"factory": "ue_models:build", "spiking": ["ue_models:A_LAYER"]}, "model.spiking",
                            ["is a Linear, not a torch.nn.Module class"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_user_model_is_one_line_naming_the_field(case: str, folder: Path) -> None:
    model, field, needles = CASES[case]
    with pytest.raises(ConfigError) as info:
        _check(folder, **model)
    message = str(info.value)
    assert info.value.field == field and "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_options_go_through_when_the_factory_takes_them(folder: Path) -> None:
    _check(folder, "ue_models:build", spiking=["ue_models:Fire"], options={"width": 4})
    _check(folder, "ue_models:anything", spiking=["ue_models:Fire"], options={"whatever": 1})


def test_a_single_step_neuron_given_the_whole_sequence_is_refused(folder: Path) -> None:
    pytest.importorskip("snntorch")
    with pytest.raises(ConfigError, match="single-step neuron but was called once for all 3 timesteps") as info:
        _check(folder, "ue_snntorch:build", step_mode="multi")
    assert info.value.field == "model.step_mode"


def test_a_multi_step_neuron_in_single_mode_is_refused() -> None:
    pytest.importorskip("spikingjelly")
    studies = Path(__file__).parents[2] / "studies"
    with pytest.raises(ConfigError, match="takes a whole sequence per call") as info:
        _check(studies, "spikingjelly_convnet:build", step_mode="single")
    assert info.value.field == "model.step_mode"


def test_train_from_the_command_line(folder: Path) -> None:
    """As a user runs it: the example factory trains from its folder; one that raises is one line, exit 2."""
    pytest.importorskip("snntorch")
    studies = Path(__file__).parents[2] / "studies"
    good = cli("train", "--model", "snntorch_mlp:build", "--set", "model.hidden=16", "--epochs", "1",
               "--timesteps", "2", "-q", cwd=studies)
    assert good.returncode == 0, good.stderr
    bad = cli("train", "--model", "ue_models:raises", "--epochs", "1", "-q", cwd=folder)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "model.factory" in bad.stderr and "ValueError: width must be even" in bad.stderr
