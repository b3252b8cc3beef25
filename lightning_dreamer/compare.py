"""Compare runs on one benchmark: a markdown table and learning curves (an SVG, no plotting library).

    python -m lightning_dreamer compare v2=runs/v2_pixels v1=runs/v1_pixels wm=runs/wm_pixels \\
        --budget 100000 --marks 25000 50000 --baseline random=22 --svg compare.svg

Each run directory holds the ``eval.csv`` its training wrote (one row per evaluation:
``env_steps, updates, return_mean, return_std, episodes, wall_s``). A run resumed several times
has several segments; ``wall_s`` restarts at each, so the wall-clock reported is the sum of each
segment's last evaluation time (time after a segment's last evaluation is not counted).

A name given several times (``v2=runs/seed0 v2=runs/seed1 v2=runs/seed2``) is one algorithm trained
on several seeds: its curve is the mean over the seeds at the evaluations they all reached, its band
and table cells the standard deviation over the seeds, its wall-clock the mean per seed.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lightning_dreamer.errors import UserError

COLUMNS = ("env_steps", "updates", "return_mean", "return_std", "episodes", "wall_s")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Curve:
    """One run's evaluations read from its eval.csv: env steps, mean returns and their std, wall-clock."""

    name: str
    steps: list[int]
    returns: list[float]
    stds: list[float]
    wall_s: float
    segments: int
    seeds: int = 1  # >1: a group of runs, one per training seed (``stds`` is then over the seeds)
    hardware: str = ""  # shown as a table column when any curve has it

    @property
    def label(self) -> str:
        return self.name if self.seeds == 1 else f"{self.name} ({self.seeds} seeds)"


def read_curve(name: str, run_dir: str) -> Curve:
    path = run_dir if run_dir.endswith(".csv") else os.path.join(run_dir, "eval.csv")
    if not os.path.exists(path):
        raise UserError(f"run '{name}': no evaluations at {path} (a run writes eval.csv when run.eval_every > 0)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"run '{name}': {path} is not an eval.csv (missing columns: {', '.join(missing)}; "
                            f"expected {', '.join(COLUMNS)})")
        try:
            rows = [(int(r["env_steps"]), float(r["return_mean"]), float(r["return_std"]), float(r["wall_s"])) for r in reader]
        except (TypeError, ValueError) as err:
            raise UserError(f"run '{name}': {path} has a malformed row ({err})") from None
    if not rows:
        raise UserError(f"run '{name}': {path} holds no evaluation yet")
    wall, segments, last = 0.0, 1, rows[0][3]
    for _, _, _, w in rows[1:]:
        if w < last:  # a resumed segment: its clock restarted
            wall += last
            segments += 1
        last = w
    wall += last
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # stable: repeated steps keep their order
    return Curve(name, [rows[i][0] for i in order], [rows[i][1] for i in order], [rows[i][2] for i in order], wall, segments)


def group(name: str, curves: list[Curve]) -> Curve:
    """Several runs of one algorithm (one per training seed) as one curve: at each evaluation step that
    every run reached, the mean of their returns and the standard deviation over the runs (a resumed
    run that evaluated a step twice counts its last evaluation there)."""
    if len(curves) == 1:
        return curves[0]
    by_step = [dict(zip(c.steps, c.returns)) for c in curves]
    steps = sorted(set.intersection(*(set(b) for b in by_step)))
    if not steps:
        raise UserError(f"runs named '{name}' share no evaluation step (each run's env steps differ)")
    means = [statistics.mean(b[s] for b in by_step) for s in steps]
    stds = [statistics.stdev(b[s] for b in by_step) for s in steps]
    return Curve(name, steps, means, stds, statistics.mean(c.wall_s for c in curves),
                 sum(c.segments for c in curves), len(curves))


def at(curve: Curve, step: int) -> tuple[float, float] | None:
    """(return, its std) of the last evaluation at or before ``step`` env steps; None if the run
    has not got there."""
    if curve.steps[-1] < step:
        return None
    values = [(r, d) for s, r, d in zip(curve.steps, curve.returns, curve.stds) if s <= step]
    return values[-1] if values else None


def table(curves: list[Curve], budget: int, marks: list[int]) -> str:
    """A markdown row per curve. A group of seeds shows mean ± std over its seeds; a single run its mean."""
    def fmt(c: Curve, step: int) -> str:
        found = at(c, step)
        if found is None:
            return "–"
        return f"{found[0]:.1f}" if c.seeds == 1 else f"{found[0]:.1f} ± {found[1]:.1f}"

    grouped = any(c.seeds > 1 for c in curves)
    hardware = any(c.hardware for c in curves)
    head = (["run"] + [f"return @ {m:,}" for m in marks]
            + [f"return @ {budget:,}", f"best ≤ {budget:,} (at)", "env steps run",
               "wall-clock per run (h)" if grouped else "wall-clock (h)", "segments"] + (["hardware"] if hardware else []))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in curves:
        within = [(r, s) for s, r in zip(c.steps, c.returns) if s <= budget]
        best = f"{max(within)[0]:.1f} ({max(within)[1]:,})" if within else "–"
        cells = ([c.label] + [fmt(c, m) for m in marks]
                 + [fmt(c, budget), best, f"{c.steps[-1]:,}", f"{c.wall_s / 3600:.2f}", str(c.segments)]
                 + ([c.hardware] if hardware else []))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _axis(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    raw = max(high - low, 1e-9) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def svg(curves: list[Curve], budget: int, baselines: dict[str, float], title: str) -> str:
    """Learning curves: evaluation return (mean, with a ±std band: over episodes for a run, over seeds
    for a group) against env steps."""
    width, height, left, right, top, bottom = 720, 420, 70, 150, 40, 50
    xt = _axis(0, max([budget] + [c.steps[-1] for c in curves]))
    values = [r + d for c in curves for r, d in zip(c.returns, c.stds)] + [r - d for c in curves for r, d in zip(c.returns, c.stds)]
    yt = _axis(min(values + list(baselines.values()) + [0.0]), max(values + list(baselines.values()) + [1.0]))
    x_max, y_lo, y_hi = xt[-1], yt[0], yt[-1]
    px = lambda s: left + (width - left - right) * s / x_max  # noqa: E731
    py = lambda r: top + (height - top - bottom) * (1 - (r - y_lo) / (y_hi - y_lo))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">{escape(title)}</text>']
    for s in xt:
        out.append(f'<line x1="{px(s):.1f}" y1="{py(y_lo):.1f}" x2="{px(s):.1f}" y2="{top}" stroke="#eee"/>')
        out.append(f'<text x="{px(s):.1f}" y="{height - bottom + 18}" text-anchor="middle">{s / 1000:g}k</text>')
    for y in yt:
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{px(x_max):.1f}" y2="{py(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    out.append(f'<text x="{(left + px(x_max)) / 2:.1f}" y="{height - 12}" text-anchor="middle">env steps</text>')
    out.append(f'<text x="16" y="{(top + py(y_lo)) / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + py(y_lo)) / 2:.1f})">evaluation return</text>')
    if budget < x_max:
        out.append(f'<line x1="{px(budget):.1f}" y1="{py(y_lo):.1f}" x2="{px(budget):.1f}" y2="{top}" stroke="#999" stroke-dasharray="2,3"/>')
    legend_y = top + 10
    for name, value in baselines.items():
        out.append(f'<line x1="{left}" y1="{py(value):.1f}" x2="{px(x_max):.1f}" y2="{py(value):.1f}" stroke="#777" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{px(x_max) + 8:.1f}" y="{py(value) + 4:.1f}" fill="#555">{escape(name)} ({value:g})</text>')
    for i, c in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        upper = " ".join(f"{px(s):.1f},{py(r + d):.1f}" for s, r, d in zip(c.steps, c.returns, c.stds))
        lower = " ".join(f"{px(s):.1f},{py(r - d):.1f}" for s, r, d in reversed(list(zip(c.steps, c.returns, c.stds))))
        out.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.15" stroke="none"/>')
        line = " ".join(f"{px(s):.1f},{py(r):.1f}" for s, r in zip(c.steps, c.returns))
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for s, r in zip(c.steps, c.returns):
            out.append(f'<circle cx="{px(s):.1f}" cy="{py(r):.1f}" r="2.5" fill="{colour}"/>')
        y = legend_y + 18 * i
        out.append(f'<line x1="{width - right + 12}" y1="{y}" x2="{width - right + 32}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 38}" y="{y + 4}">{escape(c.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def parse_runs(specs: list[str]) -> list[tuple[str, list[str]]]:
    """NAME=RUN_DIR specs, in order of first appearance; a name given several times collects its runs."""
    runs: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise UserError(f"run '{spec}': write NAME=RUN_DIR (e.g. v2=runs/bench/v2_pixels)")
        runs.setdefault(name, []).append(path)
    return list(runs.items())


def read_groups(specs: list[str]) -> list[Curve]:
    return [group(name, [read_curve(name, p) for p in paths]) for name, paths in parse_runs(specs)]


def parse_baselines(specs: list[str]) -> dict[str, float]:
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UserError(f"--baseline '{spec}': write NAME=RETURN (e.g. random=22)")
    return out


def write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
