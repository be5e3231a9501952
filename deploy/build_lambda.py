"""Build the Lambda layer that runs both stream handlers: what `sam build` deploys.

``sam build`` runs ``make build-HandlersLayer`` (template.yaml: ``HandlersLayer``,
``Metadata: BuildMethod: makefile``) once, with the ``ARTIFACTS_DIR`` that SAM chose.
ProjectorFunction and ArchiverFunction hold no code of their own: their handlers are in
this layer, which Lambda unpacks under /opt (``/opt/python`` is on the runtime's
``sys.path``), so one artifact serves both functions. (SAM never shares a makefile build
between two functions, so a function-level build would run twice.) The layer is
``ARTIFACTS_DIR/python/`` holding:

* what the handlers import, :func:`lambda_requirements`: ``[project].dependencies`` of
  pyproject.toml without the agent-only ones (``langgraph`` and ``langgraph-checkpoint``,
  and with them langchain-core and pydantic: the handlers fold stored bytes and never
  decode a value or run a graph; a unit test imports them and checks that every
  distribution they load is installed here), plus
  the ``[lambda]`` extra. pip installs them as wheels for the Lambda runtime of
  template.yaml: CPython 3.13 on arm64, Amazon Linux 2023 (glibc 2.34).
  ``--only-binary=:all:`` means nothing is compiled on this machine, so the build needs
  neither Docker nor a Python 3.13 here, and fails loudly if a dependency has no wheel
  for that platform;
* the ``checkpoint_journal`` package itself, copied without ``__pycache__`` and with the
  ``template.yaml`` symlink resolved into a file (as in the wheel).

Nothing else from the repository goes in: not .venv, .cache, tests or bench.

boto3 is bundled although the Lambda runtime has one: the functions then run the SDK
version that pyproject.toml allows and that the tests ran, not whatever the runtime
ships that month.

Usage: ``python deploy/build_lambda.py ARTIFACTS_DIR`` (Python >= 3.11, for tomllib).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "checkpoint_journal"
# Lambda adds /opt/python (where a layer's python/ lands) to a Python function's path.
LAYER_DIR = "python"
# [project].dependencies an agent needs and the handlers do not import.
AGENT_ONLY = frozenset({"langgraph", "langgraph-checkpoint"})
LAMBDA_EXTRA = "lambda"

# Must match template.yaml's Runtime and Architectures (a unit test checks it).
PYTHON_VERSION = "3.13"
# Lambda's python3.13 runs on Amazon Linux 2023, glibc 2.34: a wheel for any manylinux
# glibc up to that one runs there. pip matches platform tags exactly (it expands the
# list only for the machine it runs on), so every accepted tag is spelled out.
GLIBC_MAX_MINOR = 34
PLATFORMS = ["manylinux2014_aarch64"] + [
    f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MAX_MINOR + 1)
]

# PEP 508: a requirement starts with the project's name.
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def project_name(requirement: str) -> str:
    """The normalised (PEP 503) project name a PEP 508 requirement string names."""
    m = _NAME.match(requirement)
    if m is None:
        raise SystemExit(f"pyproject.toml: {requirement!r} is not a requirement")
    return re.sub(r"[-_.]+", "-", m[1]).lower()


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemExit(f"pyproject.toml: {where} is not a list of strings")
    return value


def lambda_requirements(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
    """The PEP 508 requirements the layer installs: ``[project].dependencies`` except
    :data:`AGENT_ONLY`, then ``[project.optional-dependencies].lambda``."""
    with pyproject.open("rb") as f:
        project = tomllib.load(f)["project"]
    core = _string_list(project["dependencies"], "[project].dependencies")
    extras = project.get("optional-dependencies") or {}
    extra = _string_list(extras.get(LAMBDA_EXTRA), f"[project.optional-dependencies].{LAMBDA_EXTRA}")
    return [r for r in core if project_name(r) not in AGENT_ONLY] + extra


def pip_install_command(target: pathlib.Path, requirements: list[str]) -> list[str]:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--progress-bar",
        "off",
        # Byte code compiled here would be for this Python, not 3.13: useless there.
        "--no-compile",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        *platforms,
        "--only-binary=:all:",
        *requirements,
    ]


def copy_package(target: pathlib.Path, source: pathlib.Path = ROOT / PACKAGE) -> None:
    # symlinks=False copies what a link points to: template.yaml becomes a file.
    shutil.copytree(
        source,
        target / PACKAGE,
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def tree_size(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1]:
        print(
            "usage: build_lambda.py ARTIFACTS_DIR  (normally run by `sam build`, "
            "through `make build-HandlersLayer`)",
            file=sys.stderr,
        )
        return 2
    artifacts = pathlib.Path(argv[1]).resolve()
    # SAM hands over a fresh, empty directory; refusing anything else keeps stale files
    # (a module deleted from the source, say) out of a deployment.
    if artifacts.exists() and any(artifacts.iterdir()):
        print(f"{artifacts} is not empty: give an empty or missing directory", file=sys.stderr)
        return 2
    target = artifacts / LAYER_DIR
    target.mkdir(parents=True)

    subprocess.run(pip_install_command(target, lambda_requirements()), check=True)
    # Console scripts of the dependencies: their shebangs name this machine's Python.
    shutil.rmtree(target / "bin", ignore_errors=True)
    copy_package(target)

    print(f"{target}: {tree_size(target) / 1e6:.1f} MB unzipped "
          "(Lambda allows 250 MB for a function and its layers)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
