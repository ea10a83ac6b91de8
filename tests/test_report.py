"""The study report (one offline HTML page) and the plot kinds, on real tiny studies.

The page is rendered in a real headless Chromium with name resolution blocked: a probe injected into a copy of the
page records script errors, failed loads and every resource fetched, and a screenshot must show the plots.
Chromium tests skip (with the reason) where no Chromium is installed; CI (.ci/run) installs Debian's package.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from helpers import cli, cli_main, write_study
from sparsity_search.api import open_study
from sparsity_search.plots import plot_pareto, save_plot
from sparsity_search.report import gather, write_report
from sparsity_search.report.data import NEAR_BASELINE_POINTS
from sparsity_search.report.figures import pareto_figure

# Every trial but the baseline trains with lambda >= 2 from the first step: a silent network at chance accuracy,
# below min_accuracy. The first such trial reaches every MO-ASHA rung first and completes (infeasible); the later
# ones tie with it and lose the tie-break (pruned).
MIXED = dict(n_trials=5, search_space={"params": {"lambda_max": {
    "type": "float", "low": 2.0, "high": 30.0, "log": True}}},
    train={"epochs": 3, "hidden": [32], "timesteps": 2, "batch_size": 64, "lr": 0.02, "schedule": "constant"},
    early_stopping={"kind": "moasha", "mode": "stopping", "min_epochs": 1, "reduction_factor": 2},
    constraints={"min_accuracy": 0.5})
FIGURES = ("fig-front", "fig-history", "fig-curves", "fig-layers")
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I)
# Runs first in a copy of the page: collects errors (scripts, failed loads, console.error) and, once the page has
# settled, writes them with every fetched resource and the number of rendered plots into a <pre id="probe">.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  __errors.push(e.message || ('failed to load ' + ((e.target && (e.target.src || e.target.href)) || '?')));
}, true);
window.addEventListener('unhandledrejection', function (e) { __errors.push('rejection: ' + e.reason); });
var __consoleError = console.error;
console.error = function () { __errors.push('console.error: ' + Array.from(arguments).join(' '));
                              __consoleError.apply(console, arguments); };
window.addEventListener('load', function () { setTimeout(function () {
  var row = document.querySelector('tr[id^="trial-"]'), front = document.getElementById('fig-front');
  if (row && front && front.emit) {  // a click on a point, as plotly reports it to the page's handler
    front.emit('plotly_click', {points: [{customdata: Number(row.id.split('-')[1])}]});
  }
  var picked = document.querySelector('tr.picked');
  var out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({errors: __errors,
    resources: performance.getEntriesByType('resource').map(function (r) { return r.name; }),
    clicked: row ? row.id.split('-')[1] : null, picked: picked ? picked.id : null,
    plots: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(function (g) {
      return g.querySelector('.main-svg'); }).length});
  document.body.appendChild(out); }, 1000); });
</script>"""


def _chromium() -> str:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if found is None:
        pytest.skip("no chromium on this machine (CI installs Debian's `chromium`; apt-get install chromium)")
    return found


def _browse(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a local file with every host name unresolvable: a network load can only fail."""
    cmd = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _probe(page: Path, tmp: Path) -> dict:
    probed = tmp / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = _browse(probed, tmp, "--dump-dom").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the page never finished loading; DOM tail: {dom[-500:]!r}"
    return json.loads(html.unescape(found.group(1)))


def _outside_scripts(text: str) -> str:
    """The page without its inline scripts' bodies (plotly.js names URLs in strings it never loads here)."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", text, flags=re.S | re.I)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A finished 5-trial Optuna study with MO-ASHA and a min_accuracy constraint, and its report."""
    folder = tmp_path_factory.mktemp("mixed")
    name = f"mixed_{uuid.uuid4().hex[:8]}"  # unique: the PostgreSQL test copies it into a shared database
    study = write_study(folder, name=name, **MIXED)
    cli("launch", study, "--results", folder / "r", "-q", check=True)
    out = cli("report", name, "--results", folder / "r", "-o", folder / "report.html", check=True).stdout
    assert "wrote" in out
    return folder, open_study(name, results=str(folder / "r")), folder / "report.html"


def test_mixed_study_has_what_the_report_must_show(mixed):
    _, study, _ = mixed
    table = study.trials()
    assert (table["state"] == "PRUNED").sum() >= 1, "no pruned trial"
    done = table[table["state"] == "COMPLETE"]
    assert (done["val_accuracy"] < 0.5).any() and (done["val_accuracy"] >= 0.5).any(), "need both sides of 0.5"


def test_report_holds_every_picture_and_one_row_per_front_trial(mixed):
    _, study, page = mixed
    text = page.read_text()
    assert text.count("* plotly.js v") == 1  # the library is inlined once, whatever the number of figures
    for fig in FIGURES:
        assert f'id="{fig}"' in text
    rows = set(int(n) for n in re.findall(r"<tr id='front-(\d+)'", text))
    assert rows == set(study.pareto()["trial"])
    all_rows = set(int(n) for n in re.findall(r"<tr id='trial-(\d+)'", text))
    assert all_rows == set(study.trials()["trial"])
    assert "val_accuracy &gt;= 0.5" in text  # the summary names the constraint


def test_report_marks_infeasible_and_pruned_trials(mixed):
    _, study, page = mixed
    table = study.trials()
    text = page.read_text()
    infeasible = set(table.loc[(table["val_accuracy"] < 0.5) & (table["state"] == "COMPLETE"), "trial"])
    marked = set(int(n) for n in re.findall(r"<tr id='(?:front|trial)-(\d+)' class='infeasible'>", text))
    assert marked == infeasible
    for n in table.loc[table["state"] == "PRUNED", "trial"]:
        assert re.search(rf"<tr id='trial-{n}'[^>]*><td class='num'>{n}</td><td>pruned</td>", text)
    fig = pareto_figure(gather(study))
    traces = {t.name: t for t in fig.data}
    assert set(traces["pruned (epoch reached)"].customdata) == set(table.loc[table["state"] == "PRUNED", "trial"])
    assert any(s.type == "rect" for s in fig.layout.shapes)  # the region below min_accuracy is shaded


def test_hover_names_the_trial_and_its_parameters(mixed):
    _, study, _ = mixed
    fig = pareto_figure(gather(study))
    front = next(t for t in fig.data if t.name == "Pareto front")
    for n, text in zip(front.customdata, front.text):
        lam = study.trials().set_index("trial").loc[n, "params_lambda_max"]
        assert f"<b>trial {n}</b>" in text and f"lambda_max: {lam:.4g}" in text


def test_front_view_starts_near_the_baseline_and_full_range_shows_everything(mixed):
    _, study, _ = mixed
    data = gather(study)
    lowest = float(np.nanmin(data.trials["y"]))
    assert lowest < -NEAR_BASELINE_POINTS  # the silent trials sit far below the baseline
    near, full = plot_pareto(data).axes[0].get_ylim(), plot_pareto(data, full_range=True).axes[0].get_ylim()
    assert -3 * NEAR_BASELINE_POINTS - 1 <= near[0] <= -NEAR_BASELINE_POINTS < 0 <= near[1]
    assert full[0] < lowest
    assert pareto_figure(data).layout.yaxis.range[0] == pytest.approx(near[0])
    assert pareto_figure(data, full_range=True).layout.yaxis.range is None


def test_report_loads_nothing_from_the_network(mixed):
    _, _, page = mixed
    text = _outside_scripts(page.read_text())
    assert not EXTERNAL.findall(text)
    assert "<link" not in text and "@import" not in text


def test_report_renders_in_chromium_without_errors(mixed, tmp_path):
    _, study, page = mixed
    probe = _probe(page, tmp_path)
    assert probe["errors"] == []
    assert probe["plots"] == len(FIGURES)
    # clicking a trial's point highlights its row: in the front table if it is on the front, else in all trials
    front = set(study.pareto()["trial"])
    n = int(probe["clicked"])
    assert probe["picked"] == (f"front-{n}" if n in front else f"trial-{n}")
    assert all(r.startswith(("file:", "data:", "blob:")) for r in probe["resources"]), probe["resources"]


def test_screenshot_of_the_report_is_not_blank(mixed, tmp_path):
    from matplotlib.image import imread

    _, _, page = mixed
    shot = tmp_path / "shot.png"
    _browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600")
    pixels = (imread(shot)[:, :, :3] * 255).round().astype(int)
    assert pixels.shape[:2] == (1600, 1280)
    background = (pixels >= 250).all(axis=2)
    assert 0.05 < 1 - background.mean() < 0.9
    assert len(np.unique(pixels.reshape(-1, 3) // 16, axis=0)) >= 30
    # the front's blue markers and line: the plot itself was drawn, not only the page's text and tables
    front_blue = (np.abs(pixels - np.array([31, 119, 180])) <= 12).all(axis=2)
    assert front_blue.sum() >= 50


def test_plot_kinds_write_images(mixed, tmp_path):
    folder, study, _ = mixed
    png = tmp_path / "curves.png"
    cli_main("plot", study.spec.name, "--results", folder / "r", "--kind", "curves", "-o", png, check=True)
    assert png.read_bytes().startswith(b"\x89PNG")
    cli_main("plot", study.spec.name, "--results", folder / "r", "--full-range", "-o", tmp_path / "front.png",
             check=True)
    assert (tmp_path / "front.png").read_bytes().startswith(b"\x89PNG")
    data = gather(study)
    for kind in ("pareto", "history", "layers"):
        save_plot(data, kind, tmp_path / f"{kind}.svg")
        assert (tmp_path / f"{kind}.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args,needle", [
    (["report", "nosuch", "-o", "{tmp}/r.html"], "nosuch"),
    (["report", "{name}", "-o", "{tmp}/missing/r.html"], "-o"),
    (["report", "{name}", "-o", "{tmp}"], "-o"),
    (["plot", "{name}", "-o", "{tmp}/front.txt"], "-o"),
])
def test_bad_input_is_one_line_and_exit_2(mixed, tmp_path, args, needle):
    folder, study, _ = mixed
    proc = cli_main(*[a.format(tmp=tmp_path, name=study.spec.name) for a in args], "--results", folder / "r")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("*.html*"))


@pytest.mark.postgres
def test_report_from_postgresql_given_only_the_name(mixed, tmp_path):
    """The same trials in PostgreSQL, read back with a name and --storage only (the spec comes from the storage)."""
    pytest.importorskip("psycopg")
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder, study, _ = mixed
    url, name = "postgresql://postgres@127.0.0.1:5432/test", study.spec.name
    optuna.copy_study(from_study_name=name, from_storage=JournalStorage(JournalFileBackend(study.settings.storage)),
                      to_storage=url)
    try:
        page = tmp_path / "pg.html"
        cli("report", name, "--storage", url, "--results", tmp_path / "elsewhere", "-o", page, check=True)
        text = page.read_text()
        assert set(int(n) for n in re.findall(r"<tr id='trial-(\d+)'", text)) == set(study.trials()["trial"])
        assert 'id="fig-curves"' in text  # the per-epoch rows come from the storage too
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_report_of_a_study_with_no_trials_yet(tmp_path):
    """Launched nowhere yet (a Ray study before its first trial): the page still opens, with the summary."""
    from sparsity_search.api import locate, write_snapshot

    spec, settings = locate(write_study(tmp_path, name="empty", backend="ray"), results=str(tmp_path / "r"))
    write_snapshot(spec, settings.results_dir)
    page = tmp_path / "empty.html"
    size = write_report(open_study("empty", results=str(tmp_path / "r")), page)
    text = page.read_text()
    assert size == page.stat().st_size and 'id="fig-front"' in text and "No complete trial yet" in text
    assert "fig-curves" not in text


@pytest.mark.ray
def test_report_of_a_ray_study(tiny_launch, tmp_path):
    results, _ = tiny_launch("ray")  # the session's Ray study, launched from the CLI; the report only reads it
    page = tmp_path / "ray.html"
    cli("report", "tiny", "--results", results, "-o", page, check=True)
    text = page.read_text()
    front = open_study("tiny", results=str(results)).pareto()
    assert set(int(n) for n in re.findall(r"<tr id='front-(\d+)'", text)) == set(front["trial"])
    for fig in FIGURES:
        assert f'id="{fig}"' in text  # the per-epoch curves and layers come from Tune's result.json
    probe = _probe(page, tmp_path)
    assert probe["errors"] == [] and probe["plots"] == len(FIGURES)
