"""The tutorial's code runs as written."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_tutorial_code_blocks_run():
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    exec(compile("\n".join(blocks), "tutorial.md", "exec"), namespace)
    assert namespace["traj"].shape == (200, 10, 1)
