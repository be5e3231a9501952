"""deploy/build_lambda.py: the one Lambda layer `sam build` packages for both handlers.
Pure: pip is faked.

The real build (pip downloading wheels for arm64) is not run by the suite: it needs the
network and takes seconds. See docs/deployment.md ("What was verified, and how").
What the suite does check is that the handlers load nothing the layer does not install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
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
    resources = load_template(ROOT / "template.yaml")["Resources"]
    layer = resources["HandlersLayer"]["Properties"]
    assert layer["CompatibleRuntimes"] == [f"python{build_lambda.PYTHON_VERSION}"]
    assert layer["CompatibleArchitectures"] == ["arm64"]
    for function_id in ("ProjectorFunction", "ArchiverFunction"):
        props = resources[function_id]["Properties"]
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


def test_lambda_requirements_are_the_core_ones_but_langgraph_and_the_lambda_extra(
    tmp_path: pathlib.Path,
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["boto3>=1.34", "LangGraph >=1.0", '
        '"langgraph-checkpoint>=4.0,<5"]\n'
        '[project.optional-dependencies]\nlambda = ["aws-lambda-powertools[tracer]>=3.0"]\n'
        'dev = ["pytest"]\n'
    )
    assert build_lambda.lambda_requirements(pyproject) == [
        "boto3>=1.34",
        "aws-lambda-powertools[tracer]>=3.0",
    ]
    # The real list: what the handlers import at run time, no dev tools, no graph runtime.
    real = build_lambda.lambda_requirements()
    names = {build_lambda.project_name(r) for r in real}
    assert {"boto3", "aws-lambda-powertools", "fastavro", "zstandard"} <= names
    # The archiver seals the archive with AES-GCM: its wheel goes into the layer.
    assert "cryptography" in names
    assert not names & {"langgraph", "langgraph-checkpoint", "pytest", "moto", "cfn-lint",
                        "pyyaml"}


def test_lambda_requirements_need_a_lambda_extra(tmp_path: pathlib.Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["boto3>=1.34"]\n')
    with pytest.raises(SystemExit, match=r"optional-dependencies\]\.lambda is not a list"):
        build_lambda.lambda_requirements(pyproject)


@pytest.mark.parametrize(("requirement", "name"), [
    ("langgraph>=1.0", "langgraph"),
    ("LangGraph_Checkpoint >=4.0,<5", "langgraph-checkpoint"),
    ("aws-lambda-powertools[tracer]>=3.0", "aws-lambda-powertools"),
    ("zope.interface; python_version < '3.12'", "zope-interface"),
])
def test_project_names_are_normalised(requirement: str, name: str) -> None:
    assert build_lambda.project_name(requirement) == name


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
    assert command[-len(build_lambda.lambda_requirements()) :] == (
        build_lambda.lambda_requirements()
    )
    # A layer: Lambda puts /opt/python, where python/ lands, on the handlers' path.
    assert sorted(p.name for p in out.iterdir()) == ["python"]
    layer = out / "python"
    assert command[command.index("--target") + 1] == str(layer)
    assert (layer / "boto3").is_dir()
    assert not (layer / "bin").exists()
    for handler in ("projector", "archiver"):
        assert (layer / "checkpoint_journal" / "stream_handlers" / f"{handler}.py").is_file()
    assert not list(out.rglob("__pycache__"))
    # Only the package and what pip installed: nothing else of the repository.
    assert sorted(p.name for p in layer.iterdir()) == ["boto3", "checkpoint_journal"]


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


# -- the handlers load nothing the layer does not install ----------------------------------

# Both handlers, built as Lambda builds them, and the archiver's cipher (imported on its
# first seal): the files of every module that loads beyond what the interpreter had.
_LOAD_HANDLERS = """
import json, sys
before = set(sys.modules)
from checkpoint_journal._core import shred
from checkpoint_journal.stream_handlers import archiver, projector
env = {"TABLE_NAME": "t", "BUCKET_NAME": "b", "AWS_DEFAULT_REGION": "us-east-1"}
projector.make_handler(env), archiver.make_handler(env)
shred.seal(shred.new_key("t", 0), b"x", pk="p", sk="s", field_name="f")
print(json.dumps(sorted({getattr(sys.modules[m], "__file__", None) or ""
                         for m in set(sys.modules) - before})))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for ``requirements`` (as this environment's
    metadata resolves them), by normalised name."""
    from packaging.requirements import Requirement

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (_canonical(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for spec in importlib.metadata.requires(req.name) or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in req.extras | {""}):
                todo.append(sub)
    return {name for name, _ in seen}


def test_the_handlers_load_only_what_the_layer_installs() -> None:
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", _LOAD_HANDLERS], capture_output=True, text=True, check=True,
        cwd=ROOT, env={**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    ).stdout)
    owner: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        owner.update((str(dist.locate_file(f)), name) for f in dist.files or ())
    # Our own package is copied into the layer, not installed by pip.
    # certifi: botocore.httpsession uses it when importable (here langgraph's httpx brings
    # it), else the CA bundle botocore ships; the layer does without it.
    loaded_from = {owner[f] for f in loaded if f in owner} - {"checkpoint-journal", "certifi"}
    layer = _installed_closure(build_lambda.lambda_requirements())
    # The control: the load did reach the dependencies (the check below is not vacuous).
    assert {"aws-lambda-powertools", "cryptography", "fastavro", "boto3"} <= loaded_from
    assert loaded_from <= layer, f"loaded but not in the layer: {sorted(loaded_from - layer)}"
    # LangGraph stays out (and with it langchain-core and pydantic): the handlers fold
    # bytes and never decode a value or run a graph.
    assert not {"langgraph", "langgraph-checkpoint", "langchain-core", "pydantic"} & (
        layer | loaded_from)
