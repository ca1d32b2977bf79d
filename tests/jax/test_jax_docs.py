"""docs/jax.md's examples run: its ```python blocks, executed in order in one namespace."""

import re
import textwrap
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "jax.md"


def _python_blocks(text):
    pattern = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
    return [textwrap.dedent(block) for _, block in pattern.findall(text)]


def test_the_examples_in_docs_jax_md_run():
    blocks = _python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), namespace)  # noqa: S102
