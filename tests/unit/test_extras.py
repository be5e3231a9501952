"""Install profiles: the agent's install imports no extra's package, and a part used
without its extra says, in one line, which extra to install.

The missing extras are simulated in subprocesses (``sys.modules[name] = None`` makes
``import name`` fail as if it were not installed), so the test process keeps its own
modules; each subprocess imports only what it checks.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import pickle
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from checkpoint_journal._core import extras
from checkpoint_journal.errors import JournalError, MissingExtraError

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXTRA_MODULES = sorted({m for modules in extras.MODULES.values() for m in modules})


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


# -- the agent's install -------------------------------------------------------------------

_AGENT_IMPORTS = f"""
import json, sys
import checkpoint_journal
lazy = "checkpoint_journal.saver" not in sys.modules
from checkpoint_journal import JournalSaver
# The command line and every reading command's modules.
from checkpoint_journal.cli import browse, connect, detail, export, main, parser, render, verify
parser.build_parser()
# The journal's records are encoded, hashed and decoded by our own Avro codec, not fastavro.
from checkpoint_journal import schemas
from checkpoint_journal._core.chain import Hasher
event = {{"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c", "task_id": "k",
         "written_at": 0, "writes": []}}
enc = Hasher(None).encode(schemas.RECORD_WRITES, event, compress=False)
assert schemas.decode(schemas.RECORD_WRITES, enc.body, enc.fingerprint, enc.codec)["task_id"] == "k"
print(json.dumps({{"lazy": lazy, "saver": JournalSaver.__name__,
                  "loaded": [m for m in {EXTRA_MODULES!r} if m in sys.modules]}}))
"""


def test_the_agent_imports_load_no_extra() -> None:
    result = _run(_AGENT_IMPORTS)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert "fastavro" in EXTRA_MODULES  # only the archive's container files need it
    assert seen["loaded"] == []
    assert seen["saver"] == "JournalSaver"
    # `import checkpoint_journal` alone does not load the saver (LangGraph, ~0.3 s): the
    # handlers and the command line import the package without needing it.
    assert seen["lazy"]


# -- a missing extra: one line naming it ---------------------------------------------------

# What the agent's install lacks (PyYAML comes with langchain-core, so it is never absent).
_ABSENT = ["moto", "flask", "flask_cors", "aws_lambda_powertools", "aws_xray_sdk",
           "cryptography", "fastavro"]

_WITHOUT_EXTRAS = f"""
import contextlib, io, json, sys
for name in {_ABSENT!r}:
    sys.modules[name] = None
from checkpoint_journal.cli.main import main
from checkpoint_journal.errors import MissingExtraError

out = {{}}

def python(label, action):
    try:
        action()
    except MissingExtraError as e:
        out[label] = {{"message": str(e), "extra": e.extra, "name": e.name,
                      "import_error": isinstance(e, ImportError),
                      "cause": type(e.__cause__).__name__}}

def load_local():
    from checkpoint_journal.local import LocalDeployment

def load_projector():
    import checkpoint_journal.stream_handlers.projector

def load_archiver():
    from checkpoint_journal.stream_handlers import archiver

def seal():
    from checkpoint_journal._core import shred
    shred.seal(shred.new_key("t", 0), b"x", pk="p", sk="s", field_name="f")

python("local", load_local)
python("projector", load_projector)
python("archiver", load_archiver)
python("seal", seal)
for argv in (["local"], ["demo"], ["rebuild", "--all", "--table", "t"],
             ["export", "--table", "t", "--bucket", "b"]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(argv)
    out["cli " + argv[0]] = {{"status": status, "stderr": err.getvalue()}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_extras() -> dict[str, dict[str, object]]:
    result = _run(_WITHOUT_EXTRAS)
    assert result.returncode == 0, result.stderr
    seen: dict[str, dict[str, object]] = json.loads(result.stdout)
    return seen


@pytest.mark.parametrize(("label", "extra", "what"), [
    ("local", "local", "checkpoint_journal.local"),
    ("projector", "lambda", "checkpoint_journal.stream_handlers (the Lambda handlers)"),
    ("archiver", "lambda", "checkpoint_journal.stream_handlers (the Lambda handlers)"),
    ("seal", "audit", "sealing or opening the audit archive"),
])
def test_python_gets_one_import_error_naming_the_extra(
    without_extras: dict[str, dict[str, object]], label: str, extra: str, what: str,
) -> None:
    seen = without_extras[label]
    assert seen["message"] == (
        f"{what} needs the [{extra}] extra: pip install 'checkpoint-journal[{extra}]'")
    assert seen["extra"] == extra
    assert seen["import_error"] is True
    # Chained from the import that failed, which names the module.
    assert seen["cause"] == "ModuleNotFoundError"
    assert str(seen["name"]).split(".")[0] in _ABSENT


@pytest.mark.parametrize(("command", "extra"), [
    ("local", "local"), ("demo", "local"), ("rebuild", "lambda"), ("export", "audit"),
])
def test_the_command_line_says_one_line_and_fails(
    without_extras: dict[str, dict[str, object]], command: str, extra: str,
) -> None:
    seen = without_extras[f"cli {command}"]
    assert seen["status"] == 1
    assert seen["stderr"] == (
        f"checkpoint-journal: checkpoint-journal {command} needs the [{extra}] extra: "
        f"pip install 'checkpoint-journal[{extra}]'\n")


# -- the pieces ----------------------------------------------------------------------------


def test_require_finds_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in extras.MODULES["local"]:
        monkeypatch.delitem(sys.modules, module, raising=False)
    extras.require("local", "the local deployment")  # all installed in the dev venv
    assert not set(extras.MODULES["local"]) & set(sys.modules)

    monkeypatch.setitem(sys.modules, "flask_cors", None)
    assert extras.missing("local") == "flask_cors"
    with pytest.raises(MissingExtraError) as caught:
        extras.require("local", "the local deployment")
    assert str(caught.value) == (
        "the local deployment needs the [local] extra: pip install 'checkpoint-journal[local]'")
    assert caught.value.name == "flask_cors"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_guard_translates_other_packages_only() -> None:
    with pytest.raises(MissingExtraError) as caught:
        with extras.guard("audit", "opening the archive"):
            raise ModuleNotFoundError("No module named 'cryptography'", name="cryptography")
    assert caught.value.extra == "audit" and caught.value.name == "cryptography"
    # Our own modules failing to import is a bug, not a missing extra.
    with pytest.raises(ImportError) as own:
        with extras.guard("audit", "opening the archive"):
            raise ImportError("cannot import name 'x'", name="checkpoint_journal._core.shred")
    assert not isinstance(own.value, MissingExtraError)


def test_the_error_is_a_journal_error_and_an_import_error_that_pickles() -> None:
    e = MissingExtraError("checkpoint_journal.local", "local", "moto")
    assert isinstance(e, JournalError) and isinstance(e, ImportError)
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.what, back.extra, back.name) == (str(e), e.what, e.extra, e.name)


def _extra_requirements(extra: str, table: dict[str, list[str]]) -> list[str]:
    """An extra's requirements, its references to our own extras expanded."""
    out: list[str] = []
    for req in table[extra]:
        own = re.fullmatch(r"checkpoint-journal\[([a-z,]+)\]", req)
        if own:
            for sub in own[1].split(","):
                out += _extra_requirements(sub, table)
        else:
            out.append(req)
    return out


@pytest.mark.parametrize("extra", sorted(extras.MODULES))
def test_the_modules_table_matches_pyproject(extra: str) -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table = tomllib.load(f)["project"]["optional-dependencies"]
    dist_modules: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            dist_modules.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), set()).add(module)
    for req in _extra_requirements(extra, table):
        name = re.sub(r"[-_.]+", "-", Requirement(req).name).lower()
        assert dist_modules[name] & set(extras.MODULES[extra]), (
            f"[{extra}] requires {req} but extras.MODULES[{extra!r}] names none of its "
            f"modules {sorted(dist_modules[name])}")
    assert extras.missing(extra) is None  # every module named is really installed


def test_verify_without_audit_says_how_to_check_the_table_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """verify's table check needs no extra: its one line names --no-archive too."""
    import importlib

    from checkpoint_journal.errors import MissingExtraError

    # The module (checkpoint_journal.cli exports its main function under the same name).
    cli = importlib.import_module("checkpoint_journal.cli.main")

    def archive_check(args: object) -> int:
        raise MissingExtraError("checking the audit archive", "audit", "fastavro")

    monkeypatch.setitem(cli._COMMANDS, "verify", archive_check)
    assert cli.main(["verify", "--thread", "t"]) == 1
    assert capsys.readouterr().err == (
        "checkpoint-journal: checkpoint-journal verify's archive check (--no-archive skips "
        "it) needs the [audit] extra: pip install 'checkpoint-journal[audit]'\n")
