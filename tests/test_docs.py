"""The README is true: every command has help and is documented there, and its examples run.

In the style of sqlite-utils' documentation tests:

- Every command and sub-command (walked from the app) has help for itself and each parameter,
  answers ``--help``, and appears in a code block or code span of README.md.
- Every line of a ```sh block that starts with ``quantcli`` runs through the CLI, in its own
  copy of a prepared directory (see ``prepared``: the input files the examples name, and the
  default store ``./datasets`` holding ``nse@v1`` and ``nse@v2`` plus one saved backtest run,
  a feature set and a model),
  and must exit 0, or N when its comment says ``exits N``. A line stands for several runs: its
  ``[optional parts]`` left out, then each put in, one run per alternative ``a|b``; the
  placeholders RUN, N and FILE become the prepared run's id, 1 and a file name. Unquoted globs
  are expanded, as a shell would. Other sh lines must be ``make`` targets of the Makefile.
- Every ```python block runs there too, except one starting ``# excerpt of <path>``, whose
  lines must appear in that file in order (``...`` elides).
- A line that cannot run offline ends with a visible ``# not run in tests: <why>``.
"""

from __future__ import annotations

import glob
import gzip
import json
import re
import runpy
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer
from conftest import REPO, SAMPLE_DIR
from typer.testing import CliRunner

from quantcli.cli import app
from quantcli.settings import find_config

README = REPO / "README.md"
NOT_RUN = "# not run in tests:"
EXCERPT = "# excerpt of "
SYNOPSIS = "quantcli [--root"  # the global options block
EXITS = re.compile(r"#.*\bexits (\d+)\b")  # a line's documented non-zero exit code
# Shell syntax beyond one command; such a line needs `# not run in tests: <why>`.
SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", ">", ">>", "<", "&"})
WORD = re.compile(r"""(?:[^\s'"]|"[^"]*"|'[^']*')+""")
PLACEHOLDER = re.compile(r"(?<![\w-])(RUN|N|FILE)(?![\w-])")
CORPUS = REPO / "tests" / "corpus"


# ---------------------------------------------------------------------------------- the README


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: its language, text and first line number."""

    lang: str
    text: str
    line: int


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    blocks: list[Block] = []
    lang: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```") and lang is None:
            lang, body, start = line[3:].strip(), [], number + 1
        elif line.startswith("```"):
            blocks.append(Block(lang or "", "".join(f"{b}\n" for b in body), start))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"README.md: the code block opened on line {start - 1} is not closed"
    return blocks


BLOCKS = code_blocks(README.read_text(encoding="utf-8"))


def sh_lines() -> list[tuple[int, str]]:
    """(README line number, text) of every non-blank line in a ```sh block; a line ending in
    a backslash is joined with the next."""
    out: list[tuple[int, str]] = []
    for block in BLOCKS:
        if block.lang != "sh":
            continue
        pending: tuple[int, str] | None = None
        for number, raw in enumerate(block.text.splitlines(), block.line):
            start, text = pending or (number, "")
            text = f"{text} {raw.strip()}".strip()
            pending = (start, text.removesuffix("\\").strip()) if text.endswith("\\") else None
            if pending is None and text:
                out.append((start, text))
        assert pending is None, f"README.md line {pending[0]}: a continued line ends the block"
    return out


def _words(line: str) -> list[str]:
    """The shell words of ``line`` up to a comment, quotes kept (quoted words stay literal)."""
    words = [m.group() for m in WORD.finditer(line)]
    comment = next((i for i, w in enumerate(words) if w.startswith("#")), len(words))
    return words[:comment]


def _quoted(word: str) -> bool:
    return "'" in word or '"' in word


def _alternatives(words: list[str]) -> list[list[str]]:
    """One word list per combination of the ``a|b|c`` alternatives among ``words``."""
    out: list[list[str]] = [[]]
    for word in words:
        choices = word.split("|")
        if _quoted(word) or not all(choices):  # literal, or a shell pipe
            choices = [word]
        out = [[*prefix, choice] for prefix in out for choice in choices]
    return out


def variants(line: str) -> list[list[str]]:
    """The word lists a README line stands for: its optional ``[...]`` parts left out, then
    each one put in alone, one list per alternative ``a|b`` (see the module docstring)."""
    base: list[str] = []
    groups: list[tuple[int, list[str]]] = []  # (position in base, words)
    current: list[str] | None = None
    for word in _words(line):
        if current is None and word.startswith("["):
            current = []
        if current is None:
            base.append(word)
            continue
        closed = word.endswith("]")
        current.append(word.removeprefix("[").removesuffix("]"))
        if closed:
            groups.append((len(base), [w for w in current if w]))
            current = None
    assert current is None, f"unclosed [ in {line!r}"
    runs = [base, *([*base[:at], *group, *base[at:]] for at, group in groups)]
    return [alt for words in runs for alt in _alternatives(words)]


def expand(words: list[str], run_id: str) -> list[str]:
    """Shell-like arguments from README words: quotes removed, placeholders filled in and, for
    unquoted words, glob patterns expanded in the current directory (kept when none match)."""
    values = {"RUN": run_id, "N": "1", "FILE": "out"}
    args: list[str] = []
    for word in words:
        if _quoted(word):
            args.extend(shlex.split(word))
            continue
        arg = PLACEHOLDER.sub(lambda m: values[m.group(1)], word)
        matches = sorted(glob.glob(arg)) if glob.has_magic(arg) else []
        args.extend(matches or [arg])
    return args


def runnable_lines() -> list[Any]:
    """One pytest param per run of every ``quantcli`` line of the README's ```sh blocks."""
    params = []
    for number, line in sh_lines():
        if not line.startswith("quantcli ") or NOT_RUN in line:
            continue
        documented = EXITS.search(line)
        code = int(documented.group(1)) if documented else 0
        for words in variants(line):
            shown = " ".join(words)
            params.append(pytest.param(words, code, id=f"README:{number}: {shown}"))
    return params


# ---------------------------------------------------------------------------------- commands


def commands() -> list[tuple[str, Any]]:
    """(``quantcli ...`` path, click command) of every command and sub-command of the app."""
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.append((path, command))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "quantcli")
    return found


def _documented_text() -> str:
    """The README's code: its fenced blocks and inline code spans, where commands are shown."""
    text = README.read_text(encoding="utf-8")
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    return "\n".join([*(b.text for b in BLOCKS), *spans])


@pytest.mark.parametrize(("path", "command"), commands(), ids=[p for p, _ in commands()])
def test_every_command_has_help_and_is_in_the_readme(path: str, command: Any) -> None:
    assert (command.help or "").strip(), f"`{path}` has no help text"
    for param in command.params:
        assert (getattr(param, "help", None) or "").strip(), f"`{path}` {param.name}: no help"
    res = CliRunner().invoke(app, [*path.split()[1:], "--help"])
    assert res.exit_code == 0 and res.stdout.startswith("Usage: "), res.stdout
    if path != "quantcli":
        words = re.escape(path.removeprefix("quantcli "))
        assert re.search(rf"(?<![\w-]){words}(?![\w-])", _documented_text()), (
            f"`{path}` appears in no code block or code span of README.md"
        )


def test_every_code_block_is_checked() -> None:
    for block in BLOCKS:
        assert block.lang in ("sh", "python") or block.text.startswith(SYNOPSIS), (
            f"README.md line {block.line}: a ```{block.lang} block this test neither runs nor "
            "checks; use sh or python"
        )


def test_variants_and_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = 'quantcli data gc [--keep-last N] --format csv|json "a|b *" x*.csv # a comment'
    assert variants(line) == [
        ["quantcli", "data", "gc", "--format", fmt, '"a|b *"', "x*.csv"] for fmt in ("csv", "json")
    ] + [
        ["quantcli", "data", "gc", "--keep-last", "N", "--format", fmt, '"a|b *"', "x*.csv"]
        for fmt in ("csv", "json")
    ]
    monkeypatch.chdir(tmp_path)
    assert expand(["runs/RUN", "x*.csv", '"x*.csv"'], "r1") == ["runs/r1", "x*.csv", "x*.csv"]
    (tmp_path / "x2.csv").touch()
    (tmp_path / "x1.csv").touch()
    assert expand(["x*.csv", "N"], "r1") == ["x1.csv", "x2.csv", "1"]
    documented = EXITS.search("quantcli calendar is-session 2024-01-20  # exits 1: a Saturday")
    assert documented is not None and documented.group(1) == "1"
    assert EXITS.search("quantcli data ingest x --source csv exits 3.csv") is None


def test_the_global_options_synopsis_lists_the_global_options() -> None:
    (synopsis,) = [b.text for b in BLOCKS if b.text.startswith(SYNOPSIS)]
    root = typer.main.get_command(app)
    options = {o for p in root.params for o in p.opts if o.startswith("--")}
    assert set(re.findall(r"--[\w-]+", synopsis)) == options


def test_make_lines_name_real_targets() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.MULTILINE))
    lines = [(n, line) for n, line in sh_lines() if not line.startswith("quantcli ")]
    for number, line in lines:
        words = _words(line)
        assert words[0] == "make" and set(words[1:]) <= targets, (
            f"README.md line {number}: {line!r} is neither a quantcli line nor a make target"
        )


def test_lines_left_out_say_why() -> None:
    for number, line in sh_lines():
        if NOT_RUN in line:
            assert line.split(NOT_RUN, 1)[1].strip(), f"README.md line {number}: no reason given"


# ---------------------------------------------------------------------------------- examples


def _write_intraday(path: Path, base: float) -> None:
    """Two sessions of 5-minute bars, 09:15 to 15:25 IST."""
    rows = ["ts,open,high,low,close,volume"]
    for day in (date(2024, 7, 1), date(2024, 7, 2)):
        start = datetime.combine(day, datetime.min.time()) + timedelta(hours=9, minutes=15)
        for k in range(75):
            px = base + k * 0.5
            ts = (start + timedelta(minutes=5 * k)).strftime("%Y-%m-%d %H:%M:%S")
            rows.append(f"{ts},{px},{px + 1},{px - 1},{px + 0.5},{1000 + k}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _write_inputs(folder: Path) -> None:
    """The input files the README's examples name, small and valid."""
    shutil.copytree(SAMPLE_DIR, folder / SAMPLE_DIR.relative_to(REPO))
    shutil.copytree(REPO / "examples", folder / "examples")
    _write_intraday(folder / "RELIANCE.csv", 3000.0)
    _write_intraday(folder / "INFY.csv", 1600.0)
    # The last legacy bhavcopy (zipped) and the first UDiFF one, as NSE published them.
    for name in ("cm05JUL2024bhav.csv.zip", "BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv"):
        shutil.copy(CORPUS / "bhavcopy" / name, folder / name)
    # The sessions after the sample's last day, in the full NIFTY-50 layout.
    header = (
        "Date,Symbol,Series,Prev Close,Open,High,Low,Last,Close,VWAP,Volume,Turnover,Trades,"
        "Deliverable Volume,%Deliverble"
    )
    days = ["2020-05-04", "2020-05-05", "2020-05-06"]
    rows = [
        f"{d},MARUTI,EQ,{5358.8 + k},{5360 + k},{5400 + k},{5300 + k},{5350 + k},{5351 + k},"
        f"{5352 + k},100000,5.3e11,9000,40000,0.4"
        for k, d in enumerate(days)
    ]
    (folder / "new-days.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    tcs = ["Date,open,high,low,Close Price,volume"]
    tcs += [f"0{d}-07-2024,{4000 + d},{4010 + d},{3990 + d},{4005 + d},{5000 + d}" for d in (1, 2)]
    (folder / "tcs.csv").write_text("\n".join(tcs) + "\n", encoding="utf-8")
    # Yahoo Finance downloads (one plain, one gzipped) and an index file with empty volumes.
    shutil.copy(CORPUS / "yahoo" / "RELIANCE.NS.csv", folder / "RELIANCE.NS.csv")
    yahoo = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    yahoo += [f"2024-07-0{d},{3900 + d},{3920 + d},{3890 + d},{3910 + d},{3900 + d},{9000 + d}"
              for d in (1, 2, 3)]  # fmt: skip
    (folder / "TCS.NS.csv.gz").write_bytes(gzip.compress(("\n".join(yahoo) + "\n").encode()))
    index = ["Date,Open,High,Low,Close,Volume"]
    index += [f"2024-07-0{d},{24100 + d},{24200 + d},{24000 + d},{24150 + d}," for d in (1, 2, 3)]
    (folder / "nifty50-index.csv").write_text("\n".join(index) + "\n", encoding="utf-8")


def _cli(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == 0, f"quantcli {' '.join(args)}: {res.stdout}{res.stderr}"
    return res


@dataclass(frozen=True)
class Prepared:
    """A directory the README's examples run in, and the id of its saved run."""

    folder: Path
    run_id: str


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """The README's inputs, and the default store ``./datasets`` with ``nse@v1`` (the bundled
    sample), ``nse@v2`` (new-days.csv appended), one saved run of sma_cross on nse@v1, the
    basic feature set ``nse-basic@v1`` of nse@v1 and models ``up5@v1`` (hgb) and ``up5@v2``
    (logistic, alias ``champion``) trained on it, and a refresh recipe for ``eq`` (the legacy
    bhavcopy of 2024-07-05 in the directory)."""
    folder = tmp_path_factory.mktemp("readme")
    # The examples use the default store; a quantcli.toml above the temp directory would
    # send them (and their writes) to another one.
    assert find_config(folder) is None, f"{find_config(folder)} would redirect the examples"
    _write_inputs(folder)
    sample = [str(p.relative_to(folder)) for p in sorted((folder / "datasets").rglob("*.csv"))]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        ingest = ("-q", "data", "ingest", "nse", "--source", "nifty50")
        _cli(*ingest, "--drop-duplicates", "--allow-warnings", *sample)
        _cli(*ingest, "--append", "new-days.csv")
        res = _cli(
            "--json", "backtest", "--dataset", "nse@v1", "--strategy", "sma_cross",
            "--from", "2010-01-01",
        )  # fmt: skip
        # The Models section's examples show, remove and reproduce this version.
        _cli("-q", "features", "build", "nse-basic", "--dataset", "nse@v1", "--spec", "basic")
        _cli(
            "-q", "model", "train", "up5", "--features", "nse-basic@v1", "--label",
            "direction:5", "--model", "hgb", "-p", "max_iter=50", "--train-from", "2010-01-01",
            "--train-to", "2016-12-31", "--test-to", "2019-12-31", "--seed", "7",
        )  # fmt: skip
        # The champion and challenger examples: up5@v2, a logistic on the same window, is
        # champion (it beats up5@v1 on the sessions after 2016).
        _cli(
            "-q", "model", "train", "up5", "--features", "nse-basic@v1", "--label",
            "direction:5", "--model", "logistic", "--train-from", "2010-01-01",
            "--train-to", "2016-12-31", "--test-to", "2019-12-31", "--seed", "7",
        )  # fmt: skip
        _cli("-q", "model", "alias", "up5@v2", "champion", "--reason", "first champion")
        # The refresh examples' recipe: the bundled legacy bhavcopy as a local provider.
        _cli(
            "-q", "data", "recipe", "set", "eq", "--source", "bhavcopy-legacy", "--provider",
            "cm{date:%d}{MON}{date:%Y}bhav.csv.zip", "--start", "2024-07-05",
        )  # fmt: skip
        yield Prepared(folder, json.loads(res.stdout)["run_id"])


@pytest.fixture
def workdir(prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the prepared directory, made the current directory."""
    work = tmp_path / "work"
    shutil.copytree(prepared.folder, work, symlinks=True)
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(("words", "code"), runnable_lines())
def test_readme_command_line_runs(
    words: list[str], code: int, workdir: Path, prepared: Prepared
) -> None:
    assert not SHELL_OPERATORS & set(words) and not any("$(" in w for w in words), (
        f"{' '.join(words)!r}: shell syntax the docs test does not run; end the line with "
        f"`{NOT_RUN} <why>` or show one command a line"
    )
    args = expand(words, prepared.run_id)
    assert args[0] == "quantcli"
    res = CliRunner().invoke(app, args[1:])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    assert res.exit_code == code, f"exit {res.exit_code}, not {code}\n{res.stdout}{res.stderr}"


def python_blocks() -> list[Any]:
    """One pytest param per ```python block of the README that is not an excerpt."""
    return [
        pytest.param(b.text, id=f"README:{b.line}")
        for b in BLOCKS
        if b.lang == "python" and not b.text.startswith(EXCERPT)
    ]


@pytest.mark.parametrize("code", python_blocks())
def test_readme_python_block_runs(code: str, workdir: Path) -> None:
    script = workdir / "readme_block.py"
    script.write_text(code, encoding="utf-8")
    runpy.run_path(str(script), run_name="readme_block")


def test_readme_excerpts_match_their_files() -> None:
    excerpts = [b for b in BLOCKS if b.lang == "python" and b.text.startswith(EXCERPT)]
    assert excerpts, "README.md has no excerpt blocks; remove this test"
    for block in excerpts:
        first, *lines = block.text.splitlines()
        source = (REPO / first.removeprefix(EXCERPT).strip()).read_text(encoding="utf-8")
        rest = source.splitlines()
        for line in (ln for ln in lines if ln.strip() not in ("", "...")):
            assert line in rest, f"README.md line {block.line}: {line.strip()!r} is not in {first}"
            rest = rest[rest.index(line) + 1 :]


def test_readme_sma_cross_trades_as_the_built_in(workdir: Path) -> None:
    (code,) = [b.text for b in BLOCKS if "class SmaCross(" in b.text]
    (workdir / "readme_sma.py").write_text(code, encoding="utf-8")
    shown = runpy.run_path("readme_sma.py", run_name="readme_sma")["SmaCross"].Params()
    from quantcli.backtest.strategies.sma_cross import SmaCross

    assert asdict(shown).items() <= asdict(SmaCross.Params()).items()
    runs = []
    for strategy in ("sma_cross", "readme_sma.py:SmaCross"):
        res = _cli(
            "--json", "backtest", "--dataset", "nse@v1", "--strategy", strategy,
            "-p", "fast=5", "-p", "slow=20", "-p", "qty=7", "--from", "2010-01-01",
        )  # fmt: skip
        runs.append(Path(json.loads(res.stdout)["run_dir"]))
    for name in ("orders.parquet", "fills.parquet", "equity.parquet", "trades.parquet"):
        assert (runs[0] / name).read_bytes() == (runs[1] / name).read_bytes(), name
    assert pl.read_parquet(runs[0] / "fills.parquet").height > 10
