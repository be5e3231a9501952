"""deploy/build_lambda.py: what `sam build` packages for the projector. Pure: pip is faked.

The real build (pip downloading wheels for arm64) is not run by the suite: it needs the
network and takes seconds. See the README's deploy section for how it was verified.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from checkpoint_journal.local._cfn import load_template

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_lambda", ROOT / "deploy" / "build_lambda.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_lambda = _load_build_script()


def test_wheels_are_chosen_for_the_templates_runtime() -> None:
    props = load_template(ROOT / "template.yaml")["Resources"]["ProjectorFunction"]["Properties"]
    assert props["Runtime"] == f"python{build_lambda.PYTHON_VERSION}"
    assert props["Architectures"] == ["arm64"]
    assert all(p.endswith("_aarch64") for p in build_lambda.PLATFORMS)


def test_pip_installs_only_lambda_compatible_wheels(tmp_path: pathlib.Path) -> None:
    command = build_lambda.pip_install_command(tmp_path, ["boto3>=1.34", "pyyaml>=6"])
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-2:] == ["boto3>=1.34", "pyyaml>=6"]

    def value(flag: str) -> str:
        return str(command[command.index(flag) + 1])

    assert value("--target") == str(tmp_path)
    assert value("--python-version") == "3.13"
    assert value("--implementation") == "cp"
    # Nothing is built from source on this machine (it would be built for this machine).
    assert "--only-binary=:all:" in command
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    # Amazon Linux 2023 (Lambda's python3.13) has glibc 2.34: nothing newer may slip in.
    assert "manylinux2014_aarch64" in platforms
    assert "manylinux_2_17_aarch64" in platforms
    assert "manylinux_2_28_aarch64" in platforms
    assert max(int(p.split("_")[2]) for p in platforms if p.startswith("manylinux_2_")) == 34


def test_runtime_requirements_are_the_projects_dependencies(tmp_path: pathlib.Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["boto3>=1.34", "langgraph-checkpoint>=4.0,<5"]\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\n'
    )
    assert build_lambda.runtime_requirements(pyproject) == [
        "boto3>=1.34",
        "langgraph-checkpoint>=4.0,<5",
    ]
    # The real list: what the package imports at run time, no dev tools.
    real = build_lambda.runtime_requirements()
    assert any(r.startswith("aws-lambda-powertools") for r in real)
    # The archiver seals the archive with AES-GCM: its wheel goes into the package.
    assert any(r.startswith("cryptography") for r in real)
    assert not any(r.startswith(("pytest", "moto", "cfn-lint")) for r in real)


def _fake_package(tmp_path: pathlib.Path) -> pathlib.Path:
    src = tmp_path / "src" / "checkpoint_journal"
    (src / "stream_handlers" / "__pycache__").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "stream_handlers" / "projector.py").write_text("def handler(e, c): ...\n")
    (src / "stream_handlers" / "__pycache__" / "projector.cpython-311.pyc").write_bytes(b"x")
    (src / "stale.pyc").write_bytes(b"x")
    (tmp_path / "src" / "template.yaml").write_text("Resources: {}\n")
    (src / "template.yaml").symlink_to("../template.yaml")
    return src


def test_copy_package_drops_bytecode_and_resolves_the_template_link(
    tmp_path: pathlib.Path,
) -> None:
    src = _fake_package(tmp_path)
    out = tmp_path / "out"
    build_lambda.copy_package(out, src)

    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert copied == [
        "checkpoint_journal",
        "checkpoint_journal/__init__.py",
        "checkpoint_journal/stream_handlers",
        "checkpoint_journal/stream_handlers/projector.py",
        "checkpoint_journal/template.yaml",
    ]
    template = out / "checkpoint_journal" / "template.yaml"
    assert not template.is_symlink() and template.read_text() == "Resources: {}\n"


def test_main_installs_then_copies_the_real_package(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], check: bool) -> None:
        assert check
        calls.append(command)
        target = pathlib.Path(command[command.index("--target") + 1])
        (target / "boto3").mkdir(parents=True)
        (target / "bin").mkdir()  # console scripts pip would write
        (target / "bin" / "fastavro").write_text("#!/usr/bin/python3\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    out = tmp_path / "artifacts"

    assert build_lambda.main(["build_lambda.py", str(out)]) == 0

    (command,) = calls
    assert command[-len(build_lambda.runtime_requirements()) :] == (
        build_lambda.runtime_requirements()
    )
    assert (out / "boto3").is_dir()
    assert not (out / "bin").exists()
    handler = out / "checkpoint_journal" / "stream_handlers" / "projector.py"
    assert handler.is_file()
    assert not list(out.rglob("__pycache__"))
    # Only the package and what pip installed: nothing else of the repository.
    assert sorted(p.name for p in out.iterdir()) == ["boto3", "checkpoint_journal"]


@pytest.mark.parametrize("argv", [["build_lambda.py"], ["build_lambda.py", ""]])
def test_main_needs_an_artifacts_dir(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(subprocess, "run", no_run)
    assert build_lambda.main(argv) == 2


def test_main_refuses_a_non_empty_directory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(subprocess, "run", no_run)
    (tmp_path / "stale.py").write_text("")
    assert build_lambda.main(["build_lambda.py", str(tmp_path)]) == 2
