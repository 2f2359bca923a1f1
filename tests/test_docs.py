"""The Python examples in docs/ run as written.

Rules for the ```python blocks of each page in PAGES:

- The blocks run in order, in one namespace per page, in an empty temporary
  working directory, so a block may use names and files from earlier blocks.
- A block whose first line is `# file: NAME` is not run. Its text is written to
  NAME in the working directory, where a later block or recipe can load it
  (for example `plugins = ["./NAME"]`).
- A block whose first line is `# not run` is a fragment and is skipped.
  Non-Python text belongs in ```text, ```toml or ```bash blocks, which are
  never run.

Tracebacks name the page and its line numbers, so a failure points at the
Markdown line that raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = ["api.md", "plugins.md"]

FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
FILE_MARK = re.compile(r"# file: (\S+)$")
SKIP_MARK = "# not run"


@dataclass
class Block:
    """One ```python block: its code and the page line its code starts on."""

    code: str
    line: int

    @property
    def first_line(self) -> str:
        return self.code.split("\n", 1)[0].strip()


def python_blocks(page: Path) -> list[Block]:
    """Return the ```python blocks of `page` in order."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(match.group(1), line))
    return blocks


def run_page(page: Path) -> int:
    """Run the blocks of `page`, write out its file blocks and return how many ran."""
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    ran = 0
    for block in python_blocks(page):
        if block.first_line == SKIP_MARK:
            continue
        if file_mark := FILE_MARK.fullmatch(block.first_line):
            Path(file_mark.group(1)).write_text(block.code, encoding="utf-8")
            continue
        # Leading newlines keep the page's line numbers in tracebacks.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(page), "exec"), namespace)  # noqa: S102
        ran += 1
    return ran


def test_blocks_are_found():
    for name in PAGES:
        blocks = python_blocks(DOCS / name)
        assert blocks, f"{name} has no ```python blocks"
        runnable = [b for b in blocks if b.first_line != SKIP_MARK]
        assert runnable, f"{name} has no runnable ```python blocks"


@pytest.mark.parametrize("name", PAGES)
def test_page_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = run_page(DOCS / name)

    assert ran > 0
