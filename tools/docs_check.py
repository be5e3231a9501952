#!/usr/bin/env python
"""Run every command of README.md and docs/*.md (``make docs-check``).

    python tools/docs_check.py [--slow] [--list] [PAGE ...]

What a page's fenced blocks mean (docs/contributing.md says the same):

- ```sh (or bash, shell): every line is a command, except blank lines and lines that
  start with ``#``; a line ending in ``\\`` goes on with the next one.
- ```console: a line that starts with ``$ `` is a command (``\\`` continues it); the
  lines after it are a sample of its output, compared only in an ``expect-output`` block.
- ```python: the block is one program, run whole.
- Any other fence (```text, ```yaml, a bare ```) is not run: synopses, sample output,
  formats. Inline code is never run.

A directive, an HTML comment on the line just before a fence, changes that (several
may share one comment, separated by ``;``):

    <!-- docs-check: needs-aws -->       needs an AWS account or a deployed stack: listed,
                                         not run; each ``aws`` command's operation and
                                         options are checked against botocore's models
    <!-- docs-check: requires TOOL -->   run if TOOL is on PATH, else listed as skipped
    <!-- docs-check: slow -->            takes minutes (make test, make bench): runs
                                         only with --slow
    <!-- docs-check: expect-output -->   console: each sample output line must be
                                         printed, in that order; a line ``...`` stands
                                         for any lines, ``...`` in a line for any text

How the commands run:

- A wheel is built from a copy of this checkout (pyproject's build backend, in pip's
  build isolation, from the setuptools wheel that ``make docs-check`` fetched into
  .cache/docs-check-wheels), and a scratch venv is made in build/docs-check/venv.
  ``pip install SPEC`` installs that wheel into it, offline: what SPEC depends on (its
  extras included) is linked in from the project's .venv, and nothing else, so a page
  that uses an extra it did not install fails as a user's would.
- One deployment, a ``LocalDeployment()`` (moto) started here, serves every page, with
  a chain key secret in its Secrets Manager as the stack makes one. Each page starts
  from its environment (what ``checkpoint-journal local`` tells a second terminal to
  export), in the scratch folder build/docs-check/work, with the scratch venv first on
  PATH; then the page's commands and programs run top to bottom in one shell state
  (``export`` and ``cd`` carry over). Commands that start with ``make``, ``sam`` or
  ``.venv/`` are a contributor's: they run in the checkout, in docs-check's own
  environment (not the page's, nor the deployment's). After each command the
  deployment is drained, so the next one sees the projector and archiver caught up.
- Placeholders, words in commands and programs: TABLE, BUCKET, REGION and
  CHAIN_KEY_SECRET_ARN become the deployment's; CHECKPOINT_ID and OLDER_ID (the second
  newest checkpoint) and NEWER_ID (the newest) those of the thread the ``show`` or
  ``diff`` command names; DYNAMODBSAVER_TABLE and DYNAMODBSAVER_BUCKET a table and an
  offload bucket of langgraph-checkpoint-aws's DynamoDBSaver on the deployment, made on
  first use, holding a two-turn conversation on thread customer-9.
- ``checkpoint-journal local ...`` runs as a service: it must print its export lines
  and "Press Ctrl-C to stop.", then stop on SIGINT with status 0.
- Every other command must exit 0 (pipes fail with their first failing part).

Exit status: 0 every command that ran passed; 1 one failed (or the setup did); 2 a page
breaks the conventions above.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the pages run: --list and the unit test need none of it
    from checkpoint_journal.local import LocalDeployment

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "docs-check"
WHEELS = ROOT / ".cache" / "docs-check-wheels"
# README first, then the pages in the order the README links them: later pages use
# what earlier ones wrote (the README's thread customer-42, audit.md's customer-7).
ORDER = ["README.md", "docs/deployment.md", "docs/audit.md", "docs/cli.md",
         "docs/design.md", "docs/benchmark.md", "docs/contributing.md",
         "docs/security-iam.md"]
DIRECTIVES = ("needs-aws", "requires", "slow", "expect-output")
SHELL_LANGS = ("sh", "bash", "shell")
TIMEOUT_S = 300.0
SLOW_TIMEOUT_S = 3600.0
THREAD_OF = re.compile(r"checkpoint-journal\s+(?:show|diff)\s+(\S+)")
PLACEHOLDER = re.compile(
    r"\b(TABLE|BUCKET|REGION|CHAIN_KEY_SECRET_ARN|CHECKPOINT_ID|OLDER_ID|NEWER_ID"
    r"|DYNAMODBSAVER_TABLE|DYNAMODBSAVER_BUCKET)\b")
DYNAMODBSAVER_THREAD = "customer-9"
"""The thread of the DynamoDBSaver table that DYNAMODBSAVER_TABLE names."""
# The commands tests/e2e runs itself, or runs against (the stack they deploy).
E2E_RUNS = re.compile(r"CHECKPOINT_JOURNAL_E2E=1 .*pytest tests/e2e")
E2E_NEEDS = re.compile(r"^sam (build|deploy)\b")


class ConventionError(Exception):
    """A page breaks the conventions of this module's docstring (exit status 2)."""


# -- what the pages say --------------------------------------------------------------------


@dataclass
class Command:
    """One shell command, or one Python program (``kind == "python"``), of a page."""

    page: str
    line: int
    kind: str  # "shell" or "python"
    text: str
    directives: dict[str, str] = field(default_factory=dict)
    expected: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:  # page:line, as an editor opens it
        return f"{self.page}:{self.line}"

    @property
    def title(self) -> str:
        if self.kind == "python":
            return f"```python block, {len(self.text.splitlines())} lines"
        return " ".join(self.text.split())


_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-check:\s*(.*?)\s*-->\s*$")


def _directives(text: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, arg = part.partition(" ")
        if name not in DIRECTIVES:
            raise ConventionError(f"{where}: unknown docs-check directive {name!r} "
                                  f"(known: {', '.join(DIRECTIVES)})")
        if (name == "requires") != bool(arg.strip()):
            raise ConventionError(f"{where}: {name!r} takes "
                                  + ("a tool name" if name == "requires" else "no argument"))
        found[name] = arg.strip()
    return found


def _commands_of(lines: list[str], first: int, page: str, lang: str,
                 directives: dict[str, str]) -> Iterator[Command]:
    """The commands of one block (``lines``, dedented; ``first``: its first line)."""
    if lang == "python":
        yield Command(page, first, "python", "\n".join(lines) + "\n", directives)
        return
    current: Command | None = None
    continued = False
    for n, raw in enumerate(lines, start=first):
        line = raw.rstrip()
        if continued and current is not None:
            current.text += "\n" + line
        elif lang == "console" and line.startswith("$ "):
            if current is not None:
                yield current
            current = Command(page, n, "shell", line[2:], dict(directives))
        elif lang == "console":
            if current is None:
                if line.strip():
                    raise ConventionError(f"{page}:{n}: console block: output before "
                                          "the first `$ ` command")
                continue
            current.expected.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            if current is not None:
                yield current
            current = Command(page, n, "shell", line, dict(directives))
        continued = line.endswith("\\")
    if current is not None:
        yield current


def collect(page: Path) -> list[Command]:
    """Every command and program of ``page`` (a path under ROOT), in order."""
    name = page.relative_to(ROOT).as_posix()
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Command] = []
    i = 0
    pending: tuple[int, dict[str, str]] | None = None
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match:
            pending = (i + 1, _directives(match.group(1), f"{name}:{i + 1}"))
            i += 1
            continue
        fence = _FENCE.match(lines[i])
        if not fence:
            if pending is not None and lines[i].strip():
                raise ConventionError(f"{name}:{pending[0]}: a docs-check directive must "
                                      "be on the line just before a fence")
            i += 1
            continue
        indent, marks, lang = fence.groups()
        start = i + 1
        i += 1
        while i < len(lines) and lines[i].strip() != marks:
            i += 1
        if i == len(lines):
            raise ConventionError(f"{name}:{start}: unclosed fence")
        body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[start:i]]
        directives = pending[1] if pending else {}
        pending = None
        i += 1
        if lang == "python" or lang == "console" or lang in SHELL_LANGS:
            found = list(_commands_of(body, start + 1, name, lang, directives))
            if "expect-output" in directives and (lang != "console" or not any(
                    c.expected for c in found)):
                raise ConventionError(f"{name}:{start}: expect-output needs a console "
                                      "block with output lines")
            out += found
        elif directives:
            raise ConventionError(f"{name}:{start}: docs-check directive on a ```{lang} "
                                  "block, which is never run")
    if pending is not None:
        raise ConventionError(f"{name}:{pending[0]}: a docs-check directive must be on the "
                              "line just before a fence")
    return out


def pages(chosen: Sequence[str] = ()) -> list[Path]:
    """README.md and docs/*.md in reading order (or the ``chosen`` ones, in that order)."""
    if chosen:
        return [(ROOT / p).resolve() for p in chosen]
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    rank = {p: k for k, p in enumerate(ORDER)}
    return sorted(found, key=lambda p: (rank.get(p.relative_to(ROOT).as_posix(), len(ORDER)),
                                        p.name))


# -- commands that need AWS: checked offline -----------------------------------------------


_AWS_GLOBAL = {"--query", "--output", "--region", "--profile", "--endpoint-url",
               "--no-paginate", "--debug", "--no-cli-pager", "--cli-input-json"}
_S3_HIGH_LEVEL = {"cp", "ls", "mb", "mv", "presign", "rb", "rm", "sync", "website"}


def check_aws_syntax(command: str) -> str | None:
    """For an ``aws SERVICE OPERATION --option ...`` command: a problem with its
    operation or option names per botocore's service model, or None. Other commands
    (and the s3 high-level commands, which have no model) give None."""
    import botocore.session  # the service models ship with botocore; no client, no I/O

    words = shlex.split(command.replace("\\\n", " "), comments=True)
    if len(words) < 3 or words[0] != "aws":
        return None
    service, operation = words[1], words[2]
    if service == "s3":
        return None if operation in _S3_HIGH_LEVEL else f"no such aws s3 command {operation!r}"
    session = botocore.session.get_session()
    api = "s3" if service == "s3api" else service
    if api not in session.get_available_services():
        return f"no AWS service {service!r}"
    model = session.get_service_model(api)
    op_name = "".join(part.capitalize() for part in operation.split("-"))
    by_lower = {n.lower(): n for n in model.operation_names}
    if op_name.lower() not in by_lower:
        return f"aws {service} has no operation {operation!r}"
    shape = model.operation_model(by_lower[op_name.lower()]).input_shape
    members = {m.lower(): m for m in (shape.members if shape is not None else {})}
    for word in words[3:]:
        if not word.startswith("--") or word.split("=")[0] in _AWS_GLOBAL:
            continue
        name = word[2:].split("=")[0].replace("-", "")
        if name not in members and not (name.startswith("no") and name[2:] in members):
            return f"aws {service} {operation} has no option {word.split('=')[0]!r}"
    return None


def aws_note(cmd: Command) -> str:
    """What covers a command that needs an AWS account."""
    text = " ".join(cmd.text.split())
    if E2E_RUNS.search(text):
        return "needs an AWS account: run by tests/e2e (CHECKPOINT_JOURNAL_E2E=1)"
    if E2E_NEEDS.search(text):
        return ("needs an AWS account: tests/e2e (CHECKPOINT_JOURNAL_E2E=1) runs against "
                "the stack it makes, not the command itself")
    checked = " (operation and options checked against botocore)" if text.startswith(
        "aws ") and not text.startswith("aws s3 ") else ""
    return f"needs an AWS account: not run by any test{checked}"


# -- the scratch venv: this checkout's wheel, offline ----------------------------------------


def build_wheel(dist: Path) -> Path:
    """Build the wheel of a copy of the checkout (only what the sdist holds: no .venv,
    build/ or egg-info in the way) with the project's build backend, offline."""
    src = BUILD / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.cfg"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    # symlinks=False: checkpoint_journal/template.yaml is a link to ../template.yaml.
    shutil.copytree(ROOT / "checkpoint_journal", src / "checkpoint_journal",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if not any(WHEELS.glob("setuptools-*.whl")):
        raise RuntimeError(f"no setuptools wheel in {WHEELS}: run `make docs-check`, "
                           "which fetches it once")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--find-links", str(WHEELS), "--wheel-dir", str(dist), str(src)],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{run.stdout}{run.stderr}")
    return next(dist.glob("checkpoint_journal-*.whl"))


class ScratchVenv:
    """A venv whose only distribution is this checkout's wheel, plus, linked from the
    project's .venv (one directory on its path, named by a .pth file), the
    distributions that what was installed requires."""

    def __init__(self, where: Path, wheel: Path) -> None:
        import zipfile

        self.where, self.wheel = where, wheel
        self.links = where / "linked"
        self.linked: set[str] = set()
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True,
                       timeout=TIMEOUT_S)
        self.links.mkdir()
        site = next(where.glob("lib/python*/site-packages"))
        (site / "docs_check_linked.pth").write_text(str(self.links) + "\n", encoding="utf-8")
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode("utf-8")
        self.own_requires = [ln.split(":", 1)[1].strip() for ln in text.splitlines()
                             if ln.startswith("Requires-Dist:")]
        # Which distributions of .venv put files under each top-level name: a name of
        # one distribution is linked whole, a shared one (a namespace package such as
        # langgraph/) file by file.
        self.owners: dict[str, set[str]] = {}
        self.dists: dict[str, importlib.metadata.Distribution] = {}
        for d in importlib.metadata.distributions():
            key = _norm(d.metadata["Name"])
            self.dists[key] = d
            for f in d.files or ():
                self.owners.setdefault(f.parts[0], set()).add(key)

    @property
    def bin(self) -> Path:
        return self.where / "bin"

    def link_for(self, spec: str) -> None:
        """Link in what ``spec`` (``checkpoint-journal[extra,...]``) needs."""
        from packaging.requirements import Requirement

        req = Requirement(spec)
        if _norm(req.name) != "checkpoint-journal":
            raise RuntimeError(f"docs-check installs only checkpoint-journal, not {spec!r}")
        todo = [r for e in ["", *req.extras] for r in self.own_requires if _applies(r, e)]
        seen: set[tuple[str, frozenset[str]]] = set()
        while todo:
            dep = Requirement(todo.pop())
            key = _norm(dep.name)
            if (key, frozenset(dep.extras)) in seen:
                continue
            seen.add((key, frozenset(dep.extras)))
            if key == "checkpoint-journal":  # an extra naming another: [local] -> [lambda]
                todo += [r for e in dep.extras for r in self.own_requires if _applies(r, e)]
                continue
            dist = self.dists.get(key)
            if dist is None:
                raise RuntimeError(f"{dep.name} (needed by {spec}) is not installed in "
                                   ".venv: run `make bootstrap`")
            if key not in self.linked:
                self._link(key, dist)
            todo += [r for e in ["", *dep.extras] for r in dist.requires or ()
                     if _applies(r, e)]

    def _link(self, key: str, dist: importlib.metadata.Distribution) -> None:
        self.linked.add(key)
        base = Path(str(dist.locate_file("")))
        for f in dist.files or ():
            top = f.parts[0]
            if top == ".." or top.endswith(".pth"):
                continue  # scripts in bin/, and .pth hooks (editable installs)
            whole = self.owners.get(top) == {key}
            target = self.links / (top if whole else f)
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(base / (top if whole else f))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(requirement: str, extra: str) -> bool:
    from packaging.requirements import Requirement

    marker = Requirement(requirement).marker
    return marker.evaluate({"extra": extra}) if marker else extra == ""


# -- running ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    command: Command
    status: str  # ok, FAIL, aws, skip, slow
    seconds: float = 0.0
    note: str = ""


# Runs one command in the page's shell state: $1 the exports so far (from `export -p`),
# $2 a file holding the page's directory, $3 the command, $4 the checkout for a
# contributor's command (which gets neither the page's state nor its directory).
_WRAPPER = """\
state="$1"; here="$2"; script="$3"; checkout="$4"
if [ -n "$checkout" ]; then cd "$checkout" || exit 97
else [ -s "$state" ] && . "$state"; cd "$(cat "$here")" || exit 97
fi
set -o pipefail
. "$script"
rc=$?
[ -z "$checkout" ] && { export -p > "$state.next"; pwd > "$here.next"; }
exit $rc
"""


class Runner:
    """Runs a page's commands one by one, in its shell state, against ``dep``."""

    def __init__(self, dep: LocalDeployment, venv: ScratchVenv, work: Path,
                 chain_secret: str, slow: bool) -> None:
        self.dep, self.venv, self.work, self.slow = dep, venv, work, slow
        self.values = {"TABLE": dep.table_name, "BUCKET": dep.bucket,
                       "REGION": dep.region_name, "CHAIN_KEY_SECRET_ARN": chain_secret}
        self.state = work / ".state"
        self.count = 0

    def start_page(self) -> None:
        self.state.write_text("", encoding="utf-8")
        (self.work / ".cwd").write_text(str(self.work), encoding="utf-8")

    def env(self, *, page: bool = True) -> dict[str, str]:
        """A page's starting environment: the deployment's export lines, the scratch venv
        first on PATH. ``page=False``: docs-check's own, without either (a contributor's
        shell in the checkout)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "CHECKPOINT_JOURNAL_", "VIRTUAL_ENV", "PYTHON"))}
        if not page:
            return env
        env.update(self.dep.env())
        env["PATH"] = f"{self.venv.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv.where)
        return env

    def substitute(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            word = m.group(1)
            if word.startswith("DYNAMODBSAVER_") and word not in self.values:
                self._dynamodbsaver_source()
            if word in self.values:
                return self.values[word]
            thread = THREAD_OF.search(text)
            if thread is None:
                raise RuntimeError(f"{word} in a command that names no thread (show, diff)")
            ids = [str(t.config["configurable"]["checkpoint_id"]) for t in
                   self.dep.saver().list({"configurable": {"thread_id": thread.group(1)}},
                                         limit=2)]
            if len(ids) < 2:
                raise RuntimeError(f"thread {thread.group(1)!r} has fewer than 2 checkpoints")
            return ids[0] if word == "NEWER_ID" else ids[1]

        return PLACEHOLDER.sub(value, text)

    def _dynamodbsaver_source(self) -> None:
        """A DynamoDBSaver's table (the layout of langgraph-checkpoint-aws's sample
        CloudFormation template: PK and SK strings) and offload bucket, with a two-turn
        conversation on DYNAMODBSAVER_THREAD: a source for the pages on importing one."""
        from langgraph.func import entrypoint
        from langgraph_checkpoint_aws import DynamoDBSaver

        table, bucket = "docs-check-dynamodbsaver", "docs-check-dynamodbsaver-offload"
        ddb = self.dep.client("dynamodb")
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                  {"AttributeName": "SK", "AttributeType": "S"}])
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.1})
        self.dep.client("s3").create_bucket(Bucket=bucket)
        saver = DynamoDBSaver(
            table, session=self.dep.session(), region_name=self.dep.region_name,
            endpoint_url=self.dep.endpoint_url, enable_checkpoint_compression=True,
            s3_offload_config={"bucket_name": bucket, "endpoint_url": self.dep.s3_endpoint_url})

        @entrypoint(checkpointer=saver)
        def echo(text: str) -> str:
            return "you said: " + text

        for text in ("hello", "my order is late"):
            echo.invoke(text, {"configurable": {"thread_id": DYNAMODBSAVER_THREAD}})
        self.values.update(DYNAMODBSAVER_TABLE=table, DYNAMODBSAVER_BUCKET=bucket)

    def run(self, cmd: Command) -> Outcome:
        text = " ".join(cmd.text.split())
        if "needs-aws" in cmd.directives:
            problem = check_aws_syntax(cmd.text)
            if problem:
                return Outcome(cmd, "FAIL", note=problem)
            return Outcome(cmd, "aws", note=aws_note(cmd))
        tool = cmd.directives.get("requires")
        if tool and shutil.which(tool) is None:
            return Outcome(cmd, "skip", note=f"needs {tool}, which is not on PATH")
        if "slow" in cmd.directives and not self.slow:
            return Outcome(cmd, "slow", note="takes minutes: run with --slow")
        if re.match(r"make\s+docs-check\b", text):  # this very run: not again, inside it
            return Outcome(cmd, "ok", note="this run")
        started = time.monotonic()
        try:
            if cmd.kind == "shell" and re.match(r"checkpoint-journal\s+local\b", text) \
                    and not re.search(r"\s(-h|--help)\b", text):
                ok, output = self._service(cmd)
            else:
                ok, output = self._shell(cmd)
        except Exception as e:  # noqa: BLE001 (a placeholder's setup, a timeout: reported)
            ok, output = False, f"{type(e).__name__}: {e}"
        self.dep.drain(timeout=120)
        took = time.monotonic() - started
        if not ok:
            return Outcome(cmd, "FAIL", took, _tail(output))
        missing = _unmatched(cmd.expected, output) if "expect-output" in cmd.directives else None
        if missing is not None:
            return Outcome(cmd, "FAIL", took, f"expected output line not printed: "
                           f"{missing!r}\n{_tail(output)}")
        return Outcome(cmd, "ok", took)

    def _shell(self, cmd: Command) -> tuple[bool, str]:
        self.count += 1
        words = cmd.text.split()
        checkout = str(ROOT) if words and (words[0] in ("make", "sam")
                                           or words[0].startswith(".venv/")) else ""
        if cmd.kind == "python":
            program = self.work / f"program-{self.count}.py"
            program.write_text(self.substitute(cmd.text), encoding="utf-8")
            body = f"python {shlex.quote(str(program))}"
        else:
            body = self.substitute(cmd.text)
            pip = re.match(r"pip\s+install\s+(.*)", body, re.DOTALL)
            if pip:
                for spec in (w for w in shlex.split(pip.group(1)) if not w.startswith("-")):
                    self.venv.link_for(spec)
                body = ("python -m pip install --quiet --disable-pip-version-check "
                        f"--no-index --find-links {shlex.quote(str(self.venv.wheel.parent))} "
                        + pip.group(1))
        script = self.work / ".command.sh"
        script.write_text(body + "\n", encoding="utf-8")
        timeout = SLOW_TIMEOUT_S if "slow" in cmd.directives else TIMEOUT_S
        run = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", _WRAPPER, "docs-check", str(self.state),
             str(self.work / ".cwd"), str(script), checkout],
            env=self.env(page=not checkout), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        if run.returncode == 0:
            for name in (".state", ".cwd"):
                nxt = self.work / f"{name}.next"
                if nxt.exists():
                    nxt.replace(self.work / name)
        return run.returncode == 0, run.stdout + f"\n(exit status {run.returncode})"

    def _service(self, cmd: Command) -> tuple[bool, str]:
        """Start ``checkpoint-journal local``, wait for its export lines, stop it."""
        proc = subprocess.Popen(
            shlex.split(cmd.text), cwd=self.work, env=self.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        try:
            for line in proc.stdout:
                lines.append(line)
                if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                    break
            if not any(ln.startswith("export CHECKPOINT_JOURNAL_TABLE=") for ln in lines):
                return False, "".join(lines) + "\n(no export lines)"
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=60)
            out = "".join(lines) + rest + f"\n(exit status {proc.returncode})"
            return proc.returncode == 0 and "Stopped." in out, out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _unmatched(expected: list[str], output: str) -> str | None:
    """The first expected line not found, in order, among ``output``'s lines (both
    stripped), or None. A line ``...`` stands for any lines, and ``...`` within a line
    for any text (a key id, a time)."""
    got = iter(ln.strip() for ln in output.splitlines())
    for want in (ln.strip() for ln in expected):
        if want in ("", "..."):
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        if not any(pattern.fullmatch(line) for line in got):
            return want
    return None


def _tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


# -- main -------------------------------------------------------------------------------------


def _print(outcome: Outcome) -> None:
    cmd = outcome.command
    took = f"{outcome.seconds:6.1f}s" if outcome.status in ("ok", "FAIL") else "      -"
    title = cmd.title if len(cmd.title) <= 90 else cmd.title[:87] + "..."
    print(f"  {outcome.status:<4} {took}  {cmd.where:<26} {title}", flush=True)
    if outcome.note:
        for line in outcome.note.splitlines():
            print(f"{'':14}| {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pages", nargs="*", help="pages to check (default: README.md, docs/*.md)")
    p.add_argument("--slow", action="store_true", help="also run the blocks marked slow")
    p.add_argument("--list", action="store_true", help="list the commands; run nothing")
    args = p.parse_args(argv)
    started = time.monotonic()
    try:
        chosen = pages(args.pages)
        found = {page: collect(page) for page in chosen}
    except (ConventionError, OSError) as e:
        print(f"docs-check: {e}", file=sys.stderr)
        return 2
    if args.list:
        for cmds in found.values():
            for cmd in cmds:
                print(f"{cmd.where:<28} {', '.join(cmd.directives) or '-':<14} {cmd.title}")
        return 0
    outcomes = run_all(found, slow=args.slow)
    if outcomes is None:
        return 1
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("ok", "FAIL", "aws", "skip", "slow")}
    e2e = sum(o.status == "aws" and "run by tests/e2e" in o.note for o in outcomes)
    print(f"\ndocs-check: {counts['ok']} passed, {counts['FAIL']} failed; "
          f"{counts['aws']} need an AWS account ({e2e} of them run by tests/e2e with "
          f"CHECKPOINT_JOURNAL_E2E=1); {counts['skip']} skipped (a tool not on PATH); "
          f"{counts['slow']} slow, not run (--slow runs them); "
          f"{time.monotonic() - started:.0f} s")
    return 1 if counts["FAIL"] else 0


def run_all(found: dict[Path, list[Command]], *, slow: bool) -> list[Outcome] | None:
    """Set up (wheel, venv, deployment), run every page; None if the setup failed."""
    import secrets

    from checkpoint_journal.local import LocalDeployment

    for sub in ("dist", "venv", "work"):
        shutil.rmtree(BUILD / sub, ignore_errors=True)
    (BUILD / "work").mkdir(parents=True)
    try:
        print("docs-check: building the wheel and the scratch venv ...", flush=True)
        venv = ScratchVenv(BUILD / "venv", build_wheel(BUILD / "dist"))
    except (RuntimeError, subprocess.SubprocessError, StopIteration) as e:
        print(f"docs-check: setup failed: {e}", file=sys.stderr)
        return None
    outcomes: list[Outcome] = []
    with LocalDeployment() as dep:
        # The stack's ChainKeySecret: 64 letters and digits in Secrets Manager.
        arn = dep.client("secretsmanager").create_secret(
            Name="docs-check-chain-key", SecretString=secrets.token_hex(32))["ARN"]
        runner = Runner(dep, venv, BUILD / "work", arn, slow)
        for page, cmds in found.items():
            print(f"{page.relative_to(ROOT).as_posix()}: {len(cmds)} command(s)", flush=True)
            runner.start_page()
            for cmd in cmds:
                outcome = runner.run(cmd)
                _print(outcome)
                outcomes.append(outcome)
    return outcomes


if __name__ == "__main__":
    sys.exit(main())
