"""Which libraries a quantcli invocation imports, seen from a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def modules_loaded(invocations: Sequence[Sequence[str]], modules: Sequence[str]) -> list[str]:
    """The ``modules`` a new Python process has imported after running each of
    ``invocations`` (quantcli argument lists, each of which must exit 0) in turn."""
    code = (
        "import sys\n"
        "from quantcli.cli import app\n"
        f"for args in {[list(a) for a in invocations]!r}:\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (args, exc.code)\n"
        f"print('LOADED=' + ','.join(m for m in {list(modules)!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip().splitlines()[-1].removeprefix("LOADED=")
    return loaded.split(",") if loaded else []
