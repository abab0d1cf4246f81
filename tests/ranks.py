"""Run code in several gloo processes under torchrun and collect each rank's result (distributed tests).

`run_ranks(source)` writes `source` (which defines `main()` returning something JSON can hold) into a
script, launches it with `torchrun --standalone --nproc-per-node N` on CPU, and returns the list of
the ranks' results. A launch that fails before every rank has joined the group (torchrun aborts a
start now and then on these machines) is retried once, with a warning; a failure after that, or a
wrong result, never is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

PRELUDE = """
import json, os, sys
import torch
from lifelong import distributed
torch.set_num_threads(1)
distributed.init(torch.device("cpu"))
OUT = sys.argv[1]
open(os.path.join(OUT, f"joined{distributed.rank()}"), "w").close()
"""
EPILOGUE = """
result = main()
with open(os.path.join(OUT, f"rank{distributed.rank()}.json"), "w") as f:
    json.dump(result, f)
distributed.shutdown()
"""


def torchrun(args: list[str], n: int = 2, timeout: float = 180, env: dict[str, str] | None = None,
             cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node n ARGS` (args: a script and its arguments, or -m MODULE ...)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


def start_retried(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True, **kwargs)` for a command that launches torchrun,
    run again once, with a warning, when a rank died of SIGABRT (torchrun's start-up abort on these
    machines). The second result is returned as it is: a wrong result is never retried into a pass."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0 and "Signal 6 (SIGABRT)" in proc.stderr:
        warnings.warn(f"a rank of `{' '.join(cmd[:6])} ...` aborted (SIGABRT); retrying once", stacklevel=2)
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return proc


def run_ranks(source: str, tmp_path: Path, n: int = 2, timeout: float = 180) -> list[Any]:
    """Each rank's `main()` result, in rank order (see the module docstring)."""
    script = tmp_path / "ranks_main.py"
    script.write_text(PRELUDE + textwrap.dedent(source) + EPILOGUE)
    for attempt in (1, 2):
        out = tmp_path / f"out{attempt}"
        out.mkdir()
        proc = torchrun([str(script), str(out)], n, timeout)
        if proc.returncode == 0:
            return [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]
        joined = sum((out / f"joined{r}").exists() for r in range(n))
        if attempt == 1 and joined < n:
            warnings.warn(f"torchrun failed to start ({joined}/{n} ranks joined, exit {proc.returncode}); "
                          "retrying once", stacklevel=2)
            continue
        raise AssertionError(f"torchrun exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    raise AssertionError("unreachable")
