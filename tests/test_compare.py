"""`compare`: the table and SVG learning curves read back from runs' eval.csv files."""

import os
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT
from lightning_dreamer.__main__ import main
from lightning_dreamer.compare import read_curve

HEADER = "env_steps,updates,return_mean,return_std,episodes,wall_s\n"


def write_eval(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    (path / "eval.csv").write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_table_and_curves_from_resumed_runs(tmp_path, capsys):
    # A run resumed once (its clock restarts at the second segment) and a shorter run.
    write_eval(tmp_path / "a", [(10_000, 50, 20.0, 1.0, 5, 100.0), (20_000, 100, 60.0, 5.0, 5, 250.0),
                                (20_000, 100, 58.0, 4.0, 5, 10.0), (30_000, 150, 120.0, 9.0, 5, 200.0),
                                (40_000, 200, 90.0, 3.0, 5, 390.0)])
    write_eval(tmp_path / "b", [(10_000, 80, -5.0, 2.0, 5, 60.0), (20_000, 160, 30.0, 2.0, 5, 130.0)])
    curve = read_curve("a", str(tmp_path / "a"))
    assert curve.segments == 2 and curve.wall_s == 250.0 + 390.0
    assert curve.steps == [10_000, 20_000, 20_000, 30_000, 40_000]

    svg = tmp_path / "curves.svg"
    assert main(["compare", f"alpha={tmp_path / 'a'}", f"beta={tmp_path / 'b' / 'eval.csv'}", "--budget", "35000",
                 "--marks", "15000", "--baseline", "random=22", "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in out.splitlines()
            if line.startswith("| alpha") or line.startswith("| beta")}
    # return @ 15k, return @ 35k (budget), best within the budget (at), steps run, hours, segments
    assert rows["alpha"] == ["20.0", "120.0", "120.0 (30,000)", "40,000", f"{640 / 3600:.2f}", "2"]
    assert rows["beta"] == ["-5.0", "–", "30.0 (20,000)", "20,000", f"{130 / 3600:.2f}", "1"]  # never reached 35k

    root = ET.parse(svg).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    width, height = float(root.get("width")), float(root.get("height"))
    lines = root.findall("s:polyline", ns)
    assert [len(p.get("points").split()) for p in lines] == [5, 2]  # one curve per run, a point per evaluation
    points = [tuple(map(float, xy.split(","))) for p in lines for xy in p.get("points").split()]
    assert all(0 < x < width and 0 < y < height for x, y in points)
    xs = [x for x, _ in points[:5]]
    assert xs == sorted(xs) and xs[1] == xs[2]  # env steps increase to the right
    ys = [y for _, y in points[:5]]
    assert ys[3] == min(ys)  # the highest return is drawn highest
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "alpha" in labels and "beta" in labels and "random (22)" in labels


def test_compare_bad_input_is_one_line(tmp_path, capsys):
    assert main(["compare", f"x={tmp_path / 'nothing'}"]) == 2
    assert "no evaluations at" in capsys.readouterr().err
    assert main(["compare", str(tmp_path)]) == 2
    assert "write NAME=RUN_DIR" in capsys.readouterr().err
    (tmp_path / "eval.csv").write_text("step,score\n1,2\n")
    assert main(["compare", f"x={tmp_path}"]) == 2
    assert "missing columns: env_steps" in capsys.readouterr().err
    write_eval(tmp_path / "ok", [(1000, 1, 1.0, 0.0, 1, 1.0)])
    assert main(["compare", f"x={tmp_path / 'ok'}", "--baseline", "random"]) == 2
    assert "write NAME=RETURN" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "eval.csv").write_text(HEADER + "1000,1,oops,0,1,1\n")
    assert main(["compare", f"x={tmp_path / 'bad'}"]) == 2
    assert "malformed row" in capsys.readouterr().err


def test_without_a_budget_the_table_and_axis_fit_the_data(tmp_path, capsys):
    write_eval(tmp_path / "a", [(2_500, 10, 5.0, 1.0, 2, 10.0), (5_000, 20, 9.0, 1.0, 2, 20.0), (7_500, 30, 11.0, 1.0, 2, 30.0)])
    svg = tmp_path / "curves.svg"
    assert main(["compare", f"a={tmp_path / 'a'}", "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    assert "return @ 7,500" in out and "25,000" not in out and "100,000" not in out
    labels = [t.text for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
    ticks = [float(t[:-1]) * 1000 for t in labels if t and t.endswith("k")]  # x-axis labels such as "2.5k"
    assert ticks and max(ticks) < 20_000  # the x axis ends near 7,500, not at a default 100k budget


def test_a_repeated_name_is_one_algorithm_over_seeds(tmp_path, capsys):
    # Three seeds of "v2" (one resumed, re-evaluating 10k; one a step further) and one run of "v1".
    write_eval(tmp_path / "s0", [(5_000, 1, 10.0, 1.0, 5, 50.0), (10_000, 2, 30.0, 1.0, 5, 100.0)])
    write_eval(tmp_path / "s1", [(5_000, 1, 20.0, 1.0, 5, 60.0), (10_000, 2, 0.0, 1.0, 5, 110.0),
                                 (10_000, 2, 40.0, 1.0, 5, 5.0)])
    write_eval(tmp_path / "s2", [(5_000, 1, 30.0, 1.0, 5, 70.0), (10_000, 2, 50.0, 1.0, 5, 120.0),
                                 (15_000, 3, 90.0, 1.0, 5, 180.0)])
    write_eval(tmp_path / "v1", [(5_000, 1, 7.0, 2.0, 5, 40.0), (10_000, 2, 8.0, 2.0, 5, 80.0)])
    svg = tmp_path / "curves.svg"
    assert main(["compare", *(f"v2={tmp_path / s}" for s in ("s0", "s1", "s2")), f"v1={tmp_path / 'v1'}",
                 "--budget", "10000", "--marks", "5000", "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in out.splitlines()
            if line.startswith("| v")}
    # Only the steps all three seeds reached; seed 1's last evaluation at 10k (40) counts.
    assert rows["v2 (3 seeds)"] == ["20.0 ± 10.0", "40.0 ± 10.0", "40.0 (10,000)", "10,000",
                                    f"{(100 + 115 + 180) / 3 / 3600:.2f}", "4"]
    assert rows["v1"] == ["7.0", "8.0", "8.0 (10,000)", "10,000", f"{80 / 3600:.2f}", "1"]
    assert "wall-clock per run (h)" in out
    root = ET.parse(svg).getroot()
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "v2 (3 seeds)" in labels and "v1" in labels
    assert [len(p.get("points").split()) for p in root.findall("{http://www.w3.org/2000/svg}polyline")] == [2, 2]

    write_eval(tmp_path / "late", [(20_000, 1, 1.0, 0.0, 1, 1.0)])
    assert main(["compare", f"v2={tmp_path / 's0'}", f"v2={tmp_path / 'late'}"]) == 2
    assert "share no evaluation step" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_trains_variants_over_seeds_in_the_background_and_reports_them(tmp_path):
    """bench/sweep.py: two variants x two seeds of the tiny config trained by a detached supervisor
    (two at once), then a row per variant (mean ± std over its seeds) and each seed's final return."""
    import subprocess
    import sys

    script, root = os.path.join(ROOT, "bench", "sweep.py"), str(tmp_path / "sweep")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def sweep(*args):
        return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True)

    bad = sweep("start", "configs/tiny_point.yaml", "--variant", "x=model.actor_lr", "--root", root)
    assert bad.returncode == 1 and bad.stderr.strip().endswith("'model.actor_lr' is not key=value") and not os.path.exists(root)
    started = sweep("start", "configs/tiny_point.yaml", "--seeds", "0", "1", "--steps", "100", "--jobs", "2",
                    "--variant", "plain=", "--variant", "fast=model.actor_lr=1e-3", "--root", root,
                    "run.eval_every=50", "run.threads=1")
    assert started.returncode == 0, started.stderr[-2000:]
    again = sweep("start", "configs/tiny_point.yaml", "--seeds", "0", "--root", root)  # while the first one trains
    assert again.returncode == 1 and "a sweep is still running under" in again.stderr
    waited = sweep("wait", "--root", root, "--limit", "300")
    assert waited.stdout.count("exit 0, ") == 4, waited.stdout + open(os.path.join(root, "supervisor.log")).read()
    finals = {}
    for label in ("plain", "fast"):
        for seed in (0, 1):
            rows = open(os.path.join(root, label, f"seed{seed}", "eval.csv")).read().splitlines()
            assert rows[-1].startswith("100,")
            finals[label, seed] = float(rows[-1].split(",")[2])
    reported = sweep("report", "--root", root).stdout
    for label in ("plain", "fast"):
        mean = (finals[label, 0] + finals[label, 1]) / 2
        std = abs(finals[label, 0] - finals[label, 1]) / 2 ** 0.5
        assert f"| {label} (2 seeds) | {mean:.1f} ± {std:.1f} |" in reported
        assert f"{label} at 100: seed 0: {finals[label, 0]:.1f}, seed 1: {finals[label, 1]:.1f}" in reported
