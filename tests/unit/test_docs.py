"""The documentation: README.md's length, every relative link of README.md and docs/,
the parameter table of docs/deployment.md, the page the bench writes into, and the
conventions that `make docs-check` (tools/docs_check.py) reads the pages by.

Pure and quick: pages are read, nothing is run (`make docs-check` runs the commands).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench import docpage
from checkpoint_journal.local._cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 300
"""The issue's bound: a new user's first page; the rest lives in docs/."""

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")


def _docs_check() -> ModuleType:
    """tools/docs_check.py as a module (tools/ is not a package)."""
    name = "docs_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "docs_check.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while building
        spec.loader.exec_module(module)
    return sys.modules[name]


def _prose(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced blocks, with inline code blanked: (number, line)."""
    out, fenced = [], False
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, _INLINE_CODE.sub("", line)))
    return out


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces
    as hyphens, and -1, -2, ... after a repeated one."""
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))  # a link's text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, -1) + 1
        seen[slug] = count
    return {slug if n == 0 else f"{slug}-{n}" for slug, top in seen.items()
            for n in range(top + 1)}


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it to {README_MAX_LINES} and move the "
        "rest to a page of docs/")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for n, line in _prose(page):
        for target in _LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"line {n}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"line {n}: {target} (no such heading in {dest.name})")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_links_are_checked() -> None:
    """Control: the link check sees links in prose, not in code, and the anchor rule
    follows GitHub's."""
    readme = ROOT / "README.md"
    targets = [t for _, line in _prose(readme) for t in _LINK.findall(line)]
    assert "docs/deployment.md" in targets and "docs/benchmark.md" in targets
    assert "parameters" in _anchors(ROOT / "docs" / "deployment.md")
    assert "prove-it-intact-verify" in _anchors(ROOT / "docs" / "audit.md")
    assert "tenantprefix-per-tenant-isolation" in _anchors(ROOT / "docs" / "security-iam.md")


def test_every_template_parameter_is_in_the_deployment_table() -> None:
    params = load_template(ROOT / "template.yaml")["Parameters"]
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Parameters\n"):]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 3 else None
        if name:
            rows[name.group(1)] = cells[1]
    assert sorted(rows) == sorted(params), (
        "docs/deployment.md's parameter table must list exactly template.yaml's parameters")
    for name, spec in params.items():
        default = spec.get("Default")
        assert default is not None, f"{name}: give it a Default, and the table its value"
        want = "empty" if default == "" else f"`{default}`"
        assert rows[name] == want, f"{name}: the table says {rows[name]}, template.yaml {want}"


def test_the_bench_writes_into_docs_benchmark() -> None:
    page = ROOT / "docs" / "benchmark.md"
    assert docpage.BENCH_DOC == page
    text = page.read_text(encoding="utf-8")
    for start, end in (("<!-- bench:start -->", "<!-- bench:end -->"),
                       ("<!-- long:start -->", "<!-- long:end -->")):
        assert text.count(start) == 1 and text.count(end) == 1
        assert text.index(start) < text.index(end)
        # A new run replaces exactly its block: the rest of the page stays as it is.
        block = f"{start}\n## new\n{end}"
        after = docpage.replace_block(text, start, end, block)
        i, j = text.index(start), text.index(end) + len(end)
        assert after == text[:i] + block + text[j:]
    assert docpage.replace_block("# page\n", "<!-- a -->", "<!-- b -->", "<!-- a -->x<!-- b -->") \
        == "# page\n\n<!-- a -->x<!-- b -->\n"
    # Both writers default to that page (read from their source: importing them would
    # import LangGraph, and this test is meant to stay quick).
    for module, writer in (("readme", "write_readme"), ("long_report", "write_outputs")):
        tree = ast.parse((ROOT / "bench" / f"{module}.py").read_text(encoding="utf-8"))
        imports = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module == "bench.docpage" for a in node.names}
        func = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == writer)
        default = func.args.defaults[-1]
        assert "BENCH_DOC" in imports, module
        assert isinstance(default, ast.Name) and default.id == "BENCH_DOC", module


def test_pages_follow_the_docs_check_conventions() -> None:
    dc = _docs_check()
    commands = {page: dc.collect(page) for page in dc.pages()}
    assert [p.name for p in commands][:2] == ["README.md", "deployment.md"]
    readme = commands[ROOT / "README.md"]
    # The README opens with the install and the example, both run by docs-check.
    assert readme[0].text == "pip install checkpoint-journal"
    assert readme[1].kind == "python" and "JournalSaver" in readme[1].text
    for cmds in commands.values():
        for cmd in cmds:
            if re.match(r"(aws |sam (deploy|delete))", cmd.text):
                assert "needs-aws" in cmd.directives, f"{cmd.where}: mark it needs-aws"


def test_docs_check_reads_blocks_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dc = _docs_check()
    monkeypatch.setattr(dc, "ROOT", tmp_path)  # collect names pages relative to ROOT
    page = tmp_path / "page.md"
    page.write_text(
        "text `not run`\n"
        "```sh\n# a comment\necho one \\\n  two\n\necho three\n```\n"
        "<!-- docs-check: needs-aws; requires jq -->\n"
        "```console\n$ aws sqs purge-queue --queue-url Q\nsample output\n```\n"
        "```text\n$ not run\n```\n"
        "  <!-- docs-check: expect-output -->\n"
        "  ```console\n  $ echo hi\n  hi\n  ```\n"
        "```python\nprint(1)\n```\n", encoding="utf-8")
    got = dc.collect(page)
    assert [(c.line, c.kind, c.text) for c in got] == [
        (4, "shell", "echo one \\\n  two"), (7, "shell", "echo three"),
        (11, "shell", "aws sqs purge-queue --queue-url Q"), (19, "shell", "echo hi"),
        (23, "python", "print(1)\n")]
    assert got[2].directives == {"needs-aws": "", "requires": "jq"}
    assert got[2].expected == ["sample output"] and got[3].expected == ["hi"]
    assert dc._unmatched(["...", "b", "d"], "a\nb\nc\nd\n") is None
    assert dc._unmatched(["d", "b"], "a\nb\nc\nd\n") == "b"  # in order
    assert dc._unmatched(["key ... (HMAC)"], "key 43811104a5c8f3cd (HMAC)\n") is None
    assert dc._unmatched(["key ... (HMAC)"], "key 43811104a5c8f3cd (SHA)\n") is not None
    for bad, error in (
        ("<!-- docs-check: sometimes -->\n```sh\nls\n```\n", "unknown docs-check directive"),
        ("<!-- docs-check: slow -->\n\ntext\n```sh\nls\n```\n", "just before a fence"),
        ("<!-- docs-check: slow -->\n```text\nls\n```\n", "never run"),
        ("```sh\nls\n", "unclosed fence"),
    ):
        page.write_text(bad, encoding="utf-8")
        with pytest.raises(dc.ConventionError, match=error):
            dc.collect(page)


def test_aws_commands_name_real_operations_and_options() -> None:
    dc = _docs_check()
    checked = 0
    for page in dc.pages():
        for cmd in dc.collect(page):
            if "needs-aws" in cmd.directives and cmd.text.startswith("aws "):
                assert dc.check_aws_syntax(cmd.text) is None, cmd.where
                checked += 1
    assert checked >= 8
    # Control: a misspelt operation or option is caught.
    assert "no operation" in dc.check_aws_syntax("aws sqs purge-queues --queue-url Q")
    assert "no option" in dc.check_aws_syntax("aws sqs purge-queue --queue Q")
    assert dc.check_aws_syntax(
        "aws dynamodb update-table --table-name T --no-deletion-protection-enabled") is None
