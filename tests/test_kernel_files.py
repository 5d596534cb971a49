"""The kernels' CUDA files are found in a plain checkout, an editable install and a wheel."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nerva_xp import fused

ROOT = Path(__file__).resolve().parents[1]
READ_ALL = (
    "import nerva_xp.fused as f; "
    "print(f.kernel_folder()); "
    "print(sum(len(f.kernel_source(s.source)) > 0 for s in f.KERNELS.values()))"
)


def run_python(code: str, cwd, pythonpath: str | None = None) -> list[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"PYTHONPATH": pythonpath} if pythonpath else {})
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_every_kernel_has_a_prefixed_name_and_a_source_with_its_functions():
    for spec in fused.KERNELS.values():
        assert spec.name.startswith("nerva_xp_")
        source = fused.kernel_source(spec.source)
        assert "__device__" in source and spec.operation.split("(")[0].split()[-1] in source


def test_found_in_a_plain_checkout(tmp_path):
    folder, count = run_python(READ_ALL, tmp_path, pythonpath=str(ROOT))
    assert Path(folder) == ROOT / "kernels" and int(count) == len(fused.KERNELS)


def test_found_in_the_installed_package(tmp_path):
    folder, count = run_python(READ_ALL, tmp_path)
    assert Path(folder).is_dir() and int(count) == len(fused.KERNELS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("nerva_xp-*.whl"))


def test_shipped_inside_the_wheel(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    for spec in fused.KERNELS.values():
        assert f"nerva_xp/kernels/{spec.source}" in names
    assert "nerva_xp/data/digits.npz" in names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    site_packages = (
        str(tmp_path / "site") + ":" + ":".join(p for p in sys.path if "site-packages" in p)
    )
    folder, count = run_python(READ_ALL, tmp_path, pythonpath=site_packages)
    assert Path(folder) == tmp_path / "site" / "nerva_xp" / "kernels"
    assert int(count) == len(fused.KERNELS)
