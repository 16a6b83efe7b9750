"""The README's test command is exactly what CI runs, and its first screen has both commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(?:#.*\n)*(.+)\n```", text)


def test_readme_first_screen_has_demo_and_test_commands():
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:25])
    assert "smoothcert demo" in first_screen
    assert "python -m pytest" in first_screen


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_cmd = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci.splitlines()


def test_readme_python_example_runs(monkeypatch, tmp_path):
    """The README's Python section runs as written (its certificate built in a temp cache)."""
    import torch

    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path))
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    scope: dict = {}
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    assert scope["label"] == -1 or scope["radius"] >= 0
    assert 0 < scope["pA_lower"] < 1
