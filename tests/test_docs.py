"""The Python examples of README.md, docs/extending.md, docs/coming-from.md and docs/online.md run as written: each
file's ```python blocks in order, in one namespace (as a reader pastes them), in a scratch folder."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/extending.md", "docs/coming-from.md", "docs/online.md"]


def blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / page).read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = blocks(page)
    assert code, f"{page} has no ```python example"
    monkeypatch.chdir(tmp_path)
    backend = matplotlib.get_backend()
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, block in enumerate(code):
        exec(compile(block, f"{page} block {i + 1}", "exec"), namespace)  # noqa: S102 - our own docs
    assert matplotlib.get_backend() == backend, "an example switched the user's matplotlib backend"
