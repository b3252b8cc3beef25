"""``python -m lightning_dreamer doctor``: what this machine can do, one line per check.

Each line starts with ``ok``, ``warn`` (optional, with what to do) or ``FAIL`` (a run will fail,
with what to do). Checks that load native libraries (MuJoCo's GL, the ALE) run in a child process,
so a crash there is reported, not suffered. Exit code 1 if any check failed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

from lightning_dreamer.hardware import FAST_BF16_FLAGS, auto_precision, cpu_cores, cpu_flags, cpu_name, glibc_version

_RENDER = """
import os, time
os.environ.setdefault("MUJOCO_GL", "egl")
from dm_control import suite
env = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
env.reset()
start = time.perf_counter()
frame = env.physics.render(64, 64, camera_id=0)
for _ in range(20):
    env.physics.render(64, 64, camera_id=0)
print(f"{os.environ['MUJOCO_GL']} rendered a {frame.shape[0]}x{frame.shape[1]} frame (mean {frame.mean():.0f}), "
      f"{20 / (time.perf_counter() - start):.0f} frames/s")
"""

_ALE = """
import ale_py, gymnasium as gym
gym.register_envs(ale_py)
env = gym.make("ALE/Pong-v5")
obs, _ = env.reset(seed=0)
print(f"ale-py {ale_py.__version__}: Pong-v5 reset to a {obs.shape[0]}x{obs.shape[1]} screen")
"""


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _child(code: str, timeout: float = 120) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter: (succeeded, its last line of output or error)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = [line for line in (proc.stdout + proc.stderr).strip().splitlines() if line.strip()]
    if proc.returncode == 0:
        return True, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "ok"
    return False, lines[-1] if lines else f"exit code {proc.returncode}"


def checks():
    """Yield (status, topic, message) for every check."""
    yield "ok", "python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"

    flags = cpu_flags()
    features = [f for f in ("avx2", "avx512f", *FAST_BF16_FLAGS) if f in flags] or ["(no /proc/cpuinfo flags)"]
    precision, why = auto_precision("cpu", flags)
    yield "ok", "cpu", f"{cpu_name()}, {cpu_cores()} cores; {' '.join(features)}"
    yield "ok", "precision", f"auto -> {precision} on the CPU ({why})"
    libc = glibc_version()
    yield (("ok", "memory", f"glibc {libc}: CPU training keeps freed memory for the next update (run.keep_freed_memory)")
           if libc else ("warn", "memory", "no glibc: run.keep_freed_memory does nothing here, and each CPU update "
                         "may fault in fresh memory"))

    import torch

    yield "ok", "torch", f"{torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            yield "ok", f"gpu {i}", f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}"
        gpu_precision, gpu_why = auto_precision("cuda")
        yield "ok", "precision", f"auto -> {gpu_precision} on the GPU ({gpu_why})"
    else:
        built = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU visible"
        yield "ok", "gpu", f"none ({built}): training runs on the CPU; use configs/presets/*cpu*.yaml sizes"

    for package, needed in (("lightning", True), ("torchrl", True), ("tensordict", True), ("gymnasium", True),
                            ("dm_control", True), ("mujoco", True), ("omegaconf", True), ("cma", True),
                            ("wandb", False), ("tensorboard", False)):
        version = _version(package)
        if version:
            yield "ok", package, version
        else:
            yield ("FAIL" if needed else "warn"), package, f"not installed: pip install -e . (from the repository root)"

    gl = os.environ.get("MUJOCO_GL", "egl (default)")
    ok, message = _child(_RENDER)
    yield ("ok", "render", message) if ok else (
        "FAIL", "render", f"rendering with MUJOCO_GL={gl} failed ({message}); headless machines need EGL "
        "(apt install libegl1) or OSMesa (apt install libosmesa6, then MUJOCO_GL=osmesa)")

    ok, message = _child(_ALE)
    yield ("ok", "atari", message) if ok else ("warn", "atari", f"ALE not usable ({message}): pip install ale-py (ROMs included)")

    try:
        import Box2D  # noqa: F401

        yield "ok", "box2d", f"{_version('box2d') or _version('Box2D') or 'installed'} (CarRacing works)"
    except ImportError:
        yield "warn", "box2d", "not installed: CarRacing (configs/wm_carracing.yaml) needs it: apt install swig, then pip install box2d"

    try:
        import imageio_ffmpeg

        yield "ok", "ffmpeg", f"{imageio_ffmpeg.get_ffmpeg_exe()} (mp4 videos)"
    except Exception:  # noqa: BLE001 - missing package or missing binary
        yield "warn", "ffmpeg", "not found: mp4 videos will fail; pip install imageio-ffmpeg, or write videos as .gif"

    free = shutil.disk_usage(os.getcwd()).free / 2**30
    yield ("ok" if free > 5 else "warn"), "disk", f"{free:.0f} GiB free in {os.getcwd()} (replay buffers are memory-mapped files in run.dir)"


def run_checks() -> int:
    failed = False
    for status, topic, message in checks():
        print(f"{status:<4} {topic:<11} {message}", flush=True)
        failed |= status == "FAIL"
    return 1 if failed else 0
