"""A real package: build the wheel, install it (not editable) into a fresh target, and run it from elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import PROJECT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(PROJECT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (root / "dist").glob("simcse_lab-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                              str(root / "site"), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return wheel, root


def run_installed(root, *args, env_extra=None):
    # the dependencies come from this interpreter's site-packages; simcse_lab itself only from the target
    env = {**os.environ, "PYTHONPATH": str(root / "site"), "HOME": str(root / "home"), **(env_extra or {})}
    env.pop("SIMCSE_LAB_CACHE", None)
    env.pop("XDG_CACHE_HOME", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=root, env=env, timeout=300)


def test_wheel_ships_registry_and_configs(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "simcse_lab/data/registry.json" in names
    assert "simcse_lab/training/configs/unsup.yaml" in names
    assert "simcse_lab/training/configs/paper/unsup-bert-base.yaml" in names
    assert not any(n.startswith(("tests/", "eval/")) for n in names)


def test_installed_package_runs_from_elsewhere(installed, mirror_env, tiny_bert):
    _, root = installed
    where = run_installed(root, "-c", "import simcse_lab, simcse_lab.data.registry as r, simcse_lab.training.config as c;"
                          "print(simcse_lab.__file__); print(r.cache_dir()); print(c.resolve_config('configs/unsup.yaml'))")
    assert where.returncode == 0, where.stderr[-2000:]
    module, cache, config = where.stdout.split("\n")[:3]
    assert module.startswith(str(root / "site"))
    assert cache == str(root / "home" / ".cache" / "simcse-lab")  # never the source tree or site-packages
    assert config.startswith(str(root / "site"))

    listing = run_installed(root, "-m", "simcse_lab", "data", "list", env_extra={"SIMCSE_LAB_DATA": str(mirror_env)})
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert any(line.split()[:2] == ["stsb", "verified"] for line in listing.stdout.splitlines())

    result = run_installed(root, "-m", "simcse_lab", "eval", "--model", str(tiny_bert), "--pooler", "avg",
                           "--tasks", "stsb", "--precision", "fp32", env_extra={"SIMCSE_LAB_DATA": str(mirror_env)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "STS-B" in result.stdout and "distinct sentences encoded" in result.stdout
