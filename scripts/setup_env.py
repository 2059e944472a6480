"""Install everything the course needs into the current Python environment.

    python scripts/setup_env.py            # torch (see below), then dgm_lab[dev] in editable mode
    python scripts/setup_env.py --extras book

torch is installed first, on its own, because a plain ``torch`` requirement on a Linux
machine without torch pulls the multi-GB CUDA build even where there is no GPU:

1. torch already importable  -> kept as it is (your own CUDA or ROCm build stays).
2. an NVIDIA GPU is visible (``nvidia-smi``), or macOS -> the default build from the index.
3. otherwise (a CPU-only machine) -> the CPU build ``torch==$DGM_LAB_TORCH_VERSION``
   (default below): from a local wheel when pip finds one offline (find-links, a wheel
   cache), else from PyTorch's CPU-only index (``$DGM_LAB_TORCH_INDEX`` overrides it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_CPU_VERSION = os.environ.get("DGM_LAB_TORCH_VERSION", "2.13.0")
TORCH_CPU_INDEX = os.environ.get("DGM_LAB_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")


def pip(*args: str) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.call([smi, "-L"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def local_cpu_wheel_available(version: str) -> bool:
    """True when pip can get ``torch==version`` as a CPU wheel without any index."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "--no-index", "--no-deps", "-d", tmp, f"torch=={version}"]
        if subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
            return False
        return any("+cpu" in p.name for p in Path(tmp).glob("torch-*.whl"))


def install_torch() -> None:
    if importlib.util.find_spec("torch") is not None:
        import torch

        print(f"keeping the installed torch {torch.__version__} "
              f"(CUDA available: {torch.cuda.is_available()})")
        return
    if has_nvidia_gpu() or platform.system() == "Darwin":
        status = pip("torch")
    elif local_cpu_wheel_available(TORCH_CPU_VERSION):
        status = pip(f"torch=={TORCH_CPU_VERSION}")
    else:
        status = pip(f"torch=={TORCH_CPU_VERSION}", "--index-url", TORCH_CPU_INDEX)
    if status != 0:
        sys.exit(f"installing torch failed (pip exit code {status}); install a torch >= 2.1 "
                 "yourself (https://pytorch.org) and run this script again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="dev",
                        help="dgm_lab extras to install (comma-separated; default: dev = all)")
    args = parser.parse_args()
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before any install
        sys.exit(f"Python >= 3.11 is required, this is {platform.python_version()}")
    install_torch()
    status = pip("-e", f"{ROOT}[{args.extras}]")
    if status != 0:
        sys.exit(f"installing dgm_lab[{args.extras}] failed (pip exit code {status})")


if __name__ == "__main__":
    main()
