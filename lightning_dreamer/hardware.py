"""What this machine can do: CPU features, accelerators, and the precision ``auto`` picks.

``trainer.precision: auto`` (the default) resolves here, from the hardware's features rather than
a guess, because the same config runs on very different machines:

* a CPU with AVX-512 BF16 or AMX runs bf16 matmuls natively: ``bf16-mixed`` (measured 1.6x faster
  updates than fp32 on such a CPU, ``bench/speed.py``);
* a CPU without them emulates bf16: ``32-true`` (measured on an AVX2-only AMD EPYC: bf16-mixed
  13x slower than fp32, 24.0 s vs 1.79 s per small V2 update);
* a CUDA GPU: ``32-true`` with TF32 matmuls. The eager Dreamer update is bound by kernel launches,
  not arithmetic, and bf16-mixed measured slower than fp32 on an H100 (237 vs 187 ms per Atari-size
  V2 update), so bf16 buys nothing until the update is graph-captured.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import lru_cache

FAST_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16", "bf16", "64")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux ``/proc/cpuinfo``); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in FAST_BF16_FLAGS)


def resolve_accelerator(accelerator: str = "auto") -> str:
    """``cpu`` or ``cuda`` (what Lightning's ``auto`` picks on the machines we support)."""
    import torch

    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def auto_precision(accelerator: str = "auto", flags: frozenset[str] | None = None) -> tuple[str, str]:
    """(precision, why) for ``trainer.precision: auto`` on this machine."""
    kind = resolve_accelerator(accelerator)
    if kind == "cuda":
        return "32-true", "GPU: fp32 with TF32 matmuls (bf16-mixed measured slower for the eager update)"
    if kind != "cpu":
        return "32-true", f"{kind}: fp32"
    flags = cpu_flags() if flags is None else flags
    if cpu_fast_bf16(flags):
        have = "/".join(f for f in FAST_BF16_FLAGS if f in flags)
        return "bf16-mixed", f"CPU has {have}: bf16 matmuls run natively"
    return "32-true", "CPU has no AVX-512 BF16 or AMX: bf16 would be emulated, many times slower than fp32"


def auto_compile(device_type: str) -> tuple[str, str]:
    """(``run.compile`` mode, why) for ``run.compile: auto`` on a device of this type."""
    if device_type == "cuda":
        return "reduce-overhead", "GPU: the eager update is bound by kernel launches; compiled passes replay as CUDA graphs"
    return "eager", f"{device_type}: compiling takes minutes here and the update is bound by arithmetic"


def machine() -> str:
    """One line naming this machine as a card shows it: the CPU with its cores and the feature that
    sets its CPU precision (AVX-512 BF16 / AMX, else AVX2 or none), the GPU, torch and Python."""
    import torch

    flags = cpu_flags()
    feature = ("AVX-512 BF16" if "avx512_bf16" in flags else "AMX" if "amx_bf16" in flags
               else "AVX2, no bf16" if "avx2" in flags else "no AVX2")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_name()} ({cpu_cores()} cores, {feature}), {gpu}, torch {torch.__version__}, {platform.python_version()}"


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def wants_kept_memory(setting: str, device_type: str) -> bool:
    """``run.keep_freed_memory`` resolved: ``auto`` keeps freed memory when the update runs on the CPU
    (arithmetic on host tensors); on a GPU the host allocates little per update."""
    return setting == "on" or (setting == "auto" and device_type == "cpu")


def glibc_version() -> str | None:
    """The version of glibc this process runs on, or None (another libc, or not Linux)."""
    if platform.system() != "Linux":
        return None
    try:
        version = ctypes.CDLL(None).gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return version().decode()


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next allocations instead of handing it back to the
    OS; True if it took the settings (Linux with glibc), False elsewhere.

    A CPU update allocates and frees the same large activations every time (an Atari-size V2 update:
    about 2.5 GB of tensors of up to ~150 MB). glibc serves blocks above 32 MB by a fresh ``mmap``
    and unmaps them when freed, so each update faulted in and zeroed ~650,000 fresh pages (measured
    on a 2-core AVX2 AMD EPYC, fp32, ``bench/speed.py --keep-freed-memory on|off``). With mmap off and the heap never
    trimmed, the next update reuses the same memory: 15 % faster updates, peak memory 5 % higher
    (2.78 against 2.65 GB). It stays there: a small V2 update held 1,191 MiB
    after 26 updates and 1,221 MiB after 176, against a peak of 1,152 MiB without. The process keeps
    its peak memory until it exits, as PyTorch's CUDA allocator does on a GPU."""
    if glibc_version() is None:
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
