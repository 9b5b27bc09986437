"""The package's types as a type checker sees them (py.typed, stubs, generic QuerySet)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(shutil.which("mypy") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mypy")), reason="mypy is not installed")
def test_querysets_are_generic_for_type_checkers() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", os.path.join(HERE, "typing", "usage.py")],
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    assert out.returncode == 0, out.stdout + out.stderr
