"""Every ```python block of the documentation's own pages runs: each page's blocks one after the
other, in one namespace, in a fresh folder. (Pages that only include README sections hold none.)"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted(p for p in DOCS.rglob("*.md") if _BLOCK.search(p.read_text()))


def test_the_guide_has_runnable_pages() -> None:
    assert DOCS / "training.md" in PAGES


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")  # a real module: dataclasses look it up
    sys.modules[module.__name__] = module
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for k, block in enumerate(_BLOCK.findall(page.read_text())):
            exec(compile(block, f"{page.relative_to(DOCS)} block {k + 1}", "exec"), module.__dict__)
    finally:
        os.chdir(here)
        del sys.modules[module.__name__]
    printed = capsys.readouterr().out
    if page.name == "training.md":
        assert ", True" in printed and "setosa" in printed  # what the page says it prints
        assert (tmp_path / "iris.onnx").exists() and (tmp_path / "scored.tsv").exists()
