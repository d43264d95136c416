"""The wheel built from a clean copy of the tree holds what an installed fairsched needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The modules of fairsched.testing (besides __init__) an installed fairsched must have.
TESTING_MODULES = ("_ops", "_requires", "differential", "laws", "plugin", "servers", "strategies")

#: Not part of a clean tree: local environments, caches and build output.
LOCAL = shutil.ignore_patterns(
    ".venv", ".git", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", ".hypothesis"
)


@pytest.mark.timeout(300)
def test_the_wheel_ships_every_module_lua_script_and_type_marker(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=LOCAL)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(tree)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "is absent from the `packages` configuration" not in done.stderr
    (wheel,) = tmp_path.glob("fairsched-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("fairsched/storage/lua", "policies/lua"):
        scripts = {f"{folder}/{p.name}" for p in (ROOT / folder).glob("*.lua")}
        assert scripts and scripts <= names, f"missing from the wheel: {sorted(scripts - names)}"
    for package in ("policies", "simulator", "fairsched"):
        assert f"{package}/py.typed" in names
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
        assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"
    # The testing kit users import, and its pytest plugin, registered by entry point.
    kit = {f"fairsched/testing/{m}.py" for m in ("__init__", *TESTING_MODULES)}
    assert kit <= names, f"missing from the wheel: {sorted(kit - names)}"
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    declared = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]\nfairsched = fairsched.testing.plugin" in declared
