"""Each short flag means one thing in every command, and the README's table says which."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import typer
from conftest import REPO

from quantcli.cli import app

ROW = re.compile(r"^\| `(-\w)` \| `(--[\w-]+)` \| (.+) \|$", re.M)


def options() -> list[tuple[str, list[str], list[str]]]:
    """(command path, short flags, long flags) of every option of every command."""
    found = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if param.param_type_name == "option":
                flags = [*param.opts, *param.secondary_opts]
                shorts = [f for f in flags if not f.startswith("--")]
                found.append((path, shorts, [f for f in flags if f.startswith("--")]))
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def short_flags() -> dict[str, dict[str, list[str]]]:
    """short flag -> long flag -> the commands ("global" for the app's own) giving it."""
    table: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, shorts, longs in options():
        for short in shorts:
            for long in longs:
                table[short][long].append(path or "global")
    return table


def test_each_short_flag_has_one_meaning() -> None:
    table = short_flags()
    assert {"-d", "-p", "-s"} <= set(table)  # the walk reached the sub-commands
    meanings = {short: sorted(longs) for short, longs in table.items()}
    assert {short: longs for short, longs in meanings.items() if len(longs) != 1} == {}


def test_a_long_flag_with_a_short_form_has_it_everywhere() -> None:
    abbreviated = {long for longs in short_flags().values() for long in longs}
    missing = [
        f"{path or 'global'} {long}"
        for path, shorts, longs in options()
        for long in longs
        if long in abbreviated and not shorts
    ]
    assert missing == []


def test_the_readme_table_is_the_app_s() -> None:
    documented = {
        short: (long, sorted(c.strip(" `") for c in commands.split(",")))
        for short, long, commands in ROW.findall((REPO / "README.md").read_text("utf-8"))
    }
    actual = {
        short: (long, sorted(paths)) for short, longs in short_flags().items()
        for long, paths in longs.items()
    }  # fmt: skip
    assert documented == actual
