"""Build a Lambda deployment package of checkpoint_journal: what `sam build` deploys.

``sam build`` runs ``make build-ProjectorFunction`` (template.yaml: the function's
``Metadata: BuildMethod: makefile``, ``ContextPath: .``), which runs this script with the
``ARTIFACTS_DIR`` that SAM chose. The package is:

* the runtime dependencies, ``[project].dependencies`` of pyproject.toml (the one list of
  them), installed by pip as wheels for the Lambda runtime of template.yaml: CPython 3.13
  on arm64, Amazon Linux 2023 (glibc 2.34). ``--only-binary=:all:`` means nothing is
  compiled on this machine, so the build needs neither Docker nor a Python 3.13 here,
  and fails loudly if a dependency has no wheel for that platform;
* the ``checkpoint_journal`` package itself, copied without ``__pycache__`` and with the
  ``template.yaml`` symlink resolved into a file (as in the wheel).

Nothing else from the repository goes in: not .venv, .cache, tests or bench.

boto3 is bundled although the Lambda runtime has one: the function then runs the SDK
version that pyproject.toml allows and that the tests ran, not whatever the runtime
ships that month.

Usage: ``python deploy/build_lambda.py ARTIFACTS_DIR`` (Python >= 3.11, for tomllib).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "checkpoint_journal"

# Must match template.yaml's Runtime and Architectures (a unit test checks it).
PYTHON_VERSION = "3.13"
# Lambda's python3.13 runs on Amazon Linux 2023, glibc 2.34: a wheel for any manylinux
# glibc up to that one runs there. pip matches platform tags exactly (it expands the
# list only for the machine it runs on), so every accepted tag is spelled out.
GLIBC_MAX_MINOR = 34
PLATFORMS = ["manylinux2014_aarch64"] + [
    f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MAX_MINOR + 1)
]


def runtime_requirements(pyproject: pathlib.Path = ROOT / "pyproject.toml") -> list[str]:
    """The PEP 508 requirement strings of ``[project].dependencies``."""
    with pyproject.open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise SystemExit(f"{pyproject}: [project].dependencies is not a list of strings")
    return dependencies


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
            "through `make build-ProjectorFunction`)",
            file=sys.stderr,
        )
        return 2
    target = pathlib.Path(argv[1]).resolve()
    # SAM hands over a fresh, empty directory; refusing anything else keeps stale files
    # (a module deleted from the source, say) out of a deployment.
    if target.exists() and any(target.iterdir()):
        print(f"{target} is not empty: give an empty or missing directory", file=sys.stderr)
        return 2
    target.mkdir(parents=True, exist_ok=True)

    subprocess.run(pip_install_command(target, runtime_requirements()), check=True)
    # Console scripts of the dependencies: their shebangs name this machine's Python.
    shutil.rmtree(target / "bin", ignore_errors=True)
    copy_package(target)

    print(f"{target}: {tree_size(target) / 1e6:.1f} MB unzipped (Lambda allows 250 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
