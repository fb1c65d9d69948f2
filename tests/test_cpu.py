"""numpy's BLAS on one thread for the whole run (see `vtuber.cpu`)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


def test_limit_blas_holds_numpys_pool_to_one_thread():
    # OPENBLAS_NUM_THREADS unset: the pool starts with one thread a core, then is held to one.
    out = _run(
        "import os; os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
        "import numpy as np\n"
        "from vtuber import cpu\n"
        "before = cpu.blas_threads()\n"
        "cpu.limit_blas()\n"
        "np.ones((64, 64)) @ np.ones((64, 64))\n"
        "print(before, cpu.blas_threads())"
    )
    before, after = out.strip().split("] [")
    assert before.strip("[]")  # numpy has a BLAS pool to limit
    assert set(after.strip("[]").split(", ")) == {"1"}


def test_the_command_line_limits_blas_before_any_command_runs():
    out = _run(
        "from vtuber import cli, cpu\n"
        "cli._main = lambda argv: print(cpu.blas_threads()) or 0\n"
        "cli.main(['demo'])"
    )
    assert out.strip() and set(out.strip().strip("[]").split(", ")) == {"1"}
