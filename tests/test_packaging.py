"""Installed like a desktop application: the wheel carries the demo, icons and desktop files
and works outside the checkout; install-desktop writes the entry and never replaces a file
it did not write; the bundle's spec stays importable."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from studio import desktop

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (whl,) = out.glob("pruning_studio-*.whl")
    return whl


def test_the_wheel_carries_its_resources_and_an_spdx_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in (
        "studio/resources/demo/demo_resnet20.pt",
        "studio/resources/digits/digits.npz",
        "studio/resources/icons/pruning-studio.svg",
        "studio/resources/icons/pruning-studio-256.png",
        "studio/resources/desktop/pruning-studio.desktop",
        "studio/resources/desktop/pruning-studio-mime.xml",
    ):
        assert need in names, need
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: MIT" in text
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_installed_wheel_runs_the_demo_from_anywhere(wheel, tmp_path):
    """Installed into a folder of its own and run from another directory: the package comes
    from there (not the checkout) and finds its demo through importlib.resources."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
        + [str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), QT_QPA_PLATFORM="offscreen")
    code = "import studio; print(studio.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert where.stdout.strip().startswith(str(site)), where
    out = subprocess.run(
        [sys.executable, "-m", "studio", "prune", "demo", "--flops-target", "0.5"]
        + ["--out", "half"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (elsewhere / "half" / "model.json").is_file()
    version = subprocess.run(
        [sys.executable, "-m", "studio", "--version"],
        cwd=elsewhere,
        env=env,
        text=True,
        capture_output=True,
    )
    assert version.stdout.strip().startswith("pruning-studio 0.")


def test_install_desktop_writes_the_entry_and_never_replaces_foreign_files(tmp_path):
    home = tmp_path / "share"
    written = desktop.install(home, command="/opt/my env/bin/pruning-studio")
    entry = home / "applications" / "pruning-studio.desktop"
    assert entry in written and entry.is_file()
    text = entry.read_text()
    assert 'Exec="/opt/my env/bin/pruning-studio" gui %f' in text
    assert "MimeType=application/x-pytorch-checkpoint;" in text
    assert (home / "icons/hicolor/256x256/apps/pruning-studio.png").is_file()
    assert (home / "icons/hicolor/scalable/apps/pruning-studio.svg").is_file()
    assert (home / "mime/packages/pruning-studio.xml").is_file()
    # again: its own files are replaced
    assert desktop.install(home, command="pruning-studio") == written
    # a file the user wrote in the way: refused, nothing written, the file untouched
    mine = home / "icons/hicolor/48x48/apps/pruning-studio.png"
    mine.write_bytes(b"my own icon")
    entry.unlink()
    with pytest.raises(desktop.InputError, match="not written by the studio"):
        desktop.install(home, command="pruning-studio")
    assert mine.read_bytes() == b"my own icon" and not entry.exists()
    gone = desktop.uninstall(home)
    assert mine.read_bytes() == b"my own icon" and mine not in gone
    assert not (home / "icons/hicolor/256x256/apps/pruning-studio.png").exists()


def test_install_desktop_from_the_command_line(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
    cmd = [sys.executable, "-m", "studio", "install-desktop"]
    out = subprocess.run(cmd + ["--dry-run"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "would write" in out.stdout
    assert not (tmp_path / "applications").exists()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "applications" / "pruning-studio.desktop").is_file()
    (tmp_path / "metainfo" / f"{desktop.APP_ID}.metainfo.xml").write_text("<mine/>")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "not written by the studio" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli not installed")
def test_metainfo_validates():
    meta = ROOT / "studio/resources/desktop" / f"{desktop.APP_ID}.metainfo.xml"
    out = subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--pedantic", str(meta)],
        capture_output=True,
        text=True,
    )
    assert "E:" not in out.stdout, out.stdout


@pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed"
)
def test_desktop_entry_validates(tmp_path):
    desktop.install(tmp_path, command="/usr/bin/pruning-studio")
    out = subprocess.run(
        ["desktop-file-validate", str(tmp_path / "applications" / "pruning-studio.desktop")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "error" not in out.stdout.lower(), out.stdout


def test_the_bundle_spec_parses_and_names_files_that_exist():
    """The PyInstaller spec is not built in make test (minutes, gigabytes), so it cannot rot
    silently: it parses, and the entry point, icon and resource folders it names exist."""
    spec = ROOT / "packaging" / "pruning-studio.spec"
    tree = ast.parse(spec.read_text(), str(spec))
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert "bundle_main.py" in strings and "pruning-studio-256.png" in strings
    assert (ROOT / "packaging" / "bundle_main.py").is_file()
    assert (ROOT / "studio/resources/icons/pruning-studio-256.png").is_file()
    compile((ROOT / "packaging" / "bundle_main.py").read_text(), "bundle_main.py", "exec")
    for link in (ROOT / "packaging" / "linux").iterdir():
        assert link.resolve().is_file(), link  # the packagers' copies point at real files
