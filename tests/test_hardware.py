"""Precision `auto` from the hardware's features, Trainer options checked against this machine, `doctor`."""

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from lightning_dreamer.errors import ConfigError
from lightning_dreamer.loading import load_config
from lightning_dreamer.hardware import auto_precision, cpu_cores


@pytest.mark.parametrize("flags, expected", [
    ({"sse4_2", "avx2", "fma"}, "32-true"),  # AVX2 only: bf16 is emulated, 13x slower (measured)
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16-mixed"),
    ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, "bf16-mixed"),
    (set(), "32-true"),
])
def test_auto_precision_follows_cpu_features(flags, expected):
    precision, why = auto_precision("cpu", frozenset(flags))
    assert precision == expected and why


def test_auto_precision_on_a_gpu_is_fp32_with_tf32():
    precision, why = auto_precision("cuda")
    assert precision == "32-true" and "TF32" in why


def test_trainer_options_are_checked_against_this_machine():
    with pytest.raises(ConfigError, match="trainer.devices=.* but this machine has"):
        load_config([os.path.join(ROOT, "configs", "tiny_point.yaml")], [f"trainer.devices={cpu_cores() + 1}"])
    with pytest.raises(ConfigError, match="bad value for 'trainer.precision': '17-bits'"):
        load_config([], ["trainer.precision=17-bits"])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            load_config([], ["trainer.accelerator=gpu"])
    assert load_config([], ["trainer.precision=auto", "trainer.devices=1"]).trainer.precision == "auto"


def test_the_default_config_leaves_precision_to_auto():
    cfg = load_config([os.path.join(ROOT, "lightning_dreamer", "configs", "default.yaml")], [])
    assert "precision" not in cfg.trainer


@pytest.mark.slow
def test_doctor_reports_every_check():
    proc = subprocess.run([sys.executable, "-m", "lightning_dreamer", "doctor"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = proc.stdout.splitlines()
    topics = {line.split()[1] for line in lines}
    assert {"cpu", "precision", "memory", "torch", "gpu", "lightning", "torchrl", "render", "atari", "box2d", "ffmpeg"} <= topics
    assert all(line.split()[0] in ("ok", "warn", "FAIL") for line in lines)
    expected = auto_precision("cpu")[0]
    assert any(line.startswith("ok   precision") and f"auto -> {expected}" in line for line in lines)
    render = next(line for line in lines if line.split()[1] == "render")
    assert render.startswith("ok") and "rendered a 64x64 frame" in render  # MuJoCo really drew a frame
    assert proc.returncode == (1 if any(line.startswith("FAIL") for line in lines) else 0)


FAULTS = """
import resource, sys, torch
from lightning_dreamer.hardware import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults = []
for _ in range(16):  # an update's pattern: a large activation made, used and freed, again and again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(32 * 2**20)  # 128 MiB: above glibc's largest mmap threshold
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, *faults[-4:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings exist on Linux only")
def test_kept_freed_memory_is_reused_without_page_faults():
    """run.keep_freed_memory's mechanism, measured: a 128 MiB tensor made again after being freed
    faults in its 32,768 pages afresh every time by default; once freed memory is kept, the heap
    settles after a few rounds (glibc places an aligned block anew until freed ones coalesce) and
    the same memory serves again without a fault."""
    def run(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout.split()
        return out[0], [int(x) for x in out[1:]]

    kept, keeping = run("keep")
    _, default = run("default")
    pages = 32 * 2**20 * 4 // 4096
    assert kept == "True"
    assert min(default) > 0.9 * pages  # a fresh mmap each time: every page faulted in and zeroed again
    assert max(keeping) < 0.01 * pages  # the same memory again


def test_speed_benchmark_times_direct_and_trainer_in_fresh_processes():
    """bench/speed.py's update table: each half of a row runs in its own process, alternating --repeat
    times; the row reports the medians and the range of the Trainer / direct ratios."""
    import re

    cmd = [sys.executable, "bench/speed.py", "--algos", "dreamer_v2", "--sizes", "tiny", "--precisions", "32-true",
           "--updates", "1", "--warmup", "1", "--threads", "1", "--skip-env", "--repeat", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "each in a fresh process, alternating 2 times (medians)" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("| tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    direct, trainer = float(cells[4]), float(cells[5])
    assert 0 < direct < 60 and 0 < trainer < 60
    low, high = map(int, re.fullmatch(r"[+-][\d.]+% \(([+-]\d+)\.\.([+-]\d+)%\)", cells[6]).groups())
    assert low <= high
    bad = subprocess.run([sys.executable, "bench/speed.py", "--repeat", "0"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == "speed.py: error: --repeat must be >= 1, got 0"
