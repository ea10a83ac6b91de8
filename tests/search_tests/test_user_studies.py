"""A user's own snnTorch network in a whole study, as a user runs it: a model file in the study's folder, launched
from the command line with worker processes and MO-ASHA promotion, read back, exported, retrained, and run on a
two-node loopback Ray cluster that receives the user's module with the job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import torch

from helpers import cli
from ray_helpers import LoopbackCluster
from sparsity_search import TrainConfig, train
from sparsity_search.api import open_study
from sparsity_search.cli import main
from sparsity_search.snn import build_model

pytest.importorskip("snntorch")

# The user's file: a snnTorch MLP whose factory notes where its module was imported from (``marker``), so the Ray
# test can tell a module shipped with the job from the launching machine's file.
MODEL = '''
import os
import snntorch as snn
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, inputs, hidden, classes, beta):
        super().__init__()
        self.fc, self.lif, self.readout = nn.Linear(inputs, hidden), snn.Leaky(beta=beta), nn.Linear(hidden, classes)

    def forward(self, x):
        spikes, _ = self.lif(self.fc(x.flatten(1)))
        return self.readout(spikes)


def build(input_shape, num_classes, hidden=16, beta=0.9, marker=""):
    if marker:
        with open(marker, "a") as f:
            f.write(os.path.dirname(os.path.abspath(__file__)) + "\\n")
    return Net(int(torch.tensor(input_shape).prod()), hidden, num_classes, beta)
'''


def _study(folder: Path, name: str, **changes) -> Path:
    (folder / "my_leaky_net.py").write_text(MODEL)
    spec = {"name": name, "dataset": "digits",
            "model": {"factory": "my_leaky_net:build", "options": {"hidden": 16}},
            "train": {"epochs": 3, "timesteps": 2, "batch_size": 128},
            "search_space": {"params": {"lambda_max": {"type": "float", "low": 0.05, "high": 5.0, "log": True},
                                        "model.beta": {"type": "float", "low": 0.5, "high": 0.95}}},
            "sampler": {"name": "random"}, "n_trials": 6, "seed": 0}
    spec.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def user_study(tmp_path_factory) -> tuple[Path, Path]:
    """A finished 6-trial study of the user's network, launched with two worker processes and promotion."""
    folder = tmp_path_factory.mktemp("user_study")
    study = _study(folder, "leaky", early_stopping={"kind": "moasha", "min_epochs": 1, "reduction_factor": 3})
    cli("launch", study, "--results", folder / "results", "--workers", "2", "-q", cwd=folder, check=True)
    return study, folder / "results"


def test_the_users_network_trains_with_its_layer_names_options_and_promotion(user_study):
    study_file, results = user_study
    study = open_study("leaky", results=str(results))
    table = study.trials()
    done = table[table["state"] == "COMPLETE"]
    assert len(table) == 6 and bool(table["is_baseline"].iloc[0]) and len(done) >= 2
    assert "spikes_per_sample_lif" in table.columns and "params_model.beta" in table.columns
    # the baseline spikes; a sampled trial's lambda may silence the layer altogether (which worker finishes first
    # decides which trials complete), so those are only counted, never negative or missing
    assert done.loc[done["is_baseline"], "spikes_per_sample_lif"].iloc[0] > 0
    assert (done["spikes_per_sample_lif"] >= 0).all()
    assert done["spikes_per_sample_lif"].to_numpy() == pytest.approx(done["spikes_per_sample"].to_numpy())
    assert (table["epochs"] <= 3).all() and (done["epochs"] == 3).all()
    assert all(study.trial_config(n).user_model.options["hidden"] == 16 for n in done["trial"])
    # promotion paused the first arrivals at the rung of epoch 1, each with its checkpoint of that epoch, which loads
    # into a fresh build of the user's network (what a continuation or a heartbeat retry resumes from)
    paused = table[table["state"] == "PAUSED"]
    assert len(paused) >= 2 and (paused["epochs"] == 1).all()
    for number in paused["trial"]:
        cfg = study.trial_config(int(number))
        state = torch.load(results / "leaky" / "trials" / f"{int(number):05d}" / "checkpoint.pt", weights_only=False)
        assert state["epoch"] == 1
        build_model(cfg, (64,), 10).load_state_dict(state["model"])


def test_a_user_model_run_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_leaky_net.py").write_text(MODEL)
    cfg = TrainConfig(model={"factory": "my_leaky_net:build", "module_dir": str(tmp_path)}, epochs=3, timesteps=2,
                      batch_size=128, lambda_max=1.0, schedule="linear", threads=1, device="cpu")
    whole = train(cfg)

    def stop_after_first(epoch, metrics):
        if epoch == 1:
            raise KeyboardInterrupt  # as a kill would, after the epoch's checkpoint

    resumable = cfg.replace(checkpoint_dir=str(tmp_path / "run"), resume=True)
    with pytest.raises(KeyboardInterrupt):
        train(resumable, stop_after_first)
    resumed = train(resumable)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 3
    for key in ("val_accuracy", "test_accuracy", "spikes_per_sample", "spikes_per_sample_lif", "synops_per_sample"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-5), key


def test_readers_never_import_the_users_code_and_the_export_retrains(user_study, tmp_path, capsys):
    study_file, results = user_study
    module = study_file.parent / "my_leaky_net.py"
    hidden = tmp_path / "away.py"
    shutil.move(module, hidden)  # pareto, query, status, plot and report must not need it
    try:
        for argv in (["status", "leaky"], ["pareto", "leaky", "--all", "--format", "csv"],
                     ["query", "leaky", "--max-accuracy-drop", "100", "--export-config", str(tmp_path / "best.yaml")],
                     ["report", "leaky", "-o", str(tmp_path / "r.html")],
                     ["plot", "leaky", "--kind", "layers", "-o", str(tmp_path / "l.png")]):
            assert main([*argv, "--results", str(results)]) == 0, argv
    finally:
        shutil.move(hidden, module)
    out = capsys.readouterr().out
    assert "spikes_per_sample_lif" in out and "params_model.beta" in out
    exported = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert exported["model"]["factory"] == "my_leaky_net:build"
    assert exported["model"]["module_dir"] == str(study_file.parent.resolve())
    assert set(exported["model"]["options"]) == {"hidden", "beta"}
    # retrained from the exported file, from another folder: the factory is found through its module_dir
    cli("train", "--config", tmp_path / "best.yaml", "--epochs", "1", "--json", tmp_path / "row.json", "-q",
        cwd=tmp_path, check=True)
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["config"]["model"]["options"] == exported["model"]["options"]
    assert row["spikes_per_sample_lif"] == pytest.approx(row["spikes_per_sample"])


def test_a_broken_user_model_is_refused_before_anything_is_stored(tmp_path):
    study = _study(tmp_path, "broken")
    (tmp_path / "my_leaky_net.py").write_text(MODEL.replace("hidden=16,", "width=16,"))
    proc = cli("launch", study, "--results", tmp_path / "results", "-q", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "model.hidden" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.ray
def test_the_users_module_reaches_a_two_node_loopback_cluster_with_the_job(tmp_path):
    marker = tmp_path / "imported_from.txt"
    study = _study(tmp_path, "leaky_ray", backend="ray", n_trials=3,
                   model={"factory": "my_leaky_net:build", "options": {"hidden": 16, "marker": str(marker)}})
    elsewhere = tmp_path / "elsewhere"  # not the study's folder: Ray puts the driver's working folder on its path
    elsewhere.mkdir()
    cluster = LoopbackCluster().start()
    try:
        cli("launch", study, "--results", tmp_path / "results", "--ray-address", cluster.address, "-q",
            cwd=elsewhere, env=cluster.env, check=True)
        runtime = str(cluster.temp_dir)
        folders = marker.read_text().split()
    finally:
        cluster.stop()
    table = open_study("leaky_ray", results=str(tmp_path / "results")).trials()
    assert list(table["state"]) == ["COMPLETE"] * 3 and "spikes_per_sample_lif" in table.columns
    # the launch's check built it here; every trial built it from the copy Ray shipped to its node
    assert folders[0] == str(tmp_path.resolve())
    assert len(folders) >= 4 and all(f.startswith(runtime) and "py_modules" in f for f in folders[1:]), folders
    assert not cluster.pids()
