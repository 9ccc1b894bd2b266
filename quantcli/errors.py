"""The error hierarchy. Library code raises these; the CLI edge prints them once.

Exit codes follow the cron conventions in BSD sysexits: 1 for a generic failure, 2 for usage,
65 (EX_DATAERR) for invalid input data, 69 (EX_UNAVAILABLE) when every source of the data failed
and 75 (EX_TEMPFAIL) when another run holds the lock, so a cron wrapper can tell "retry later"
from "fix the input".
"""

from __future__ import annotations


class QuantcliError(Exception):
    """Base class of every error quantcli reports to a user.

    ``path`` and ``row`` name the file and line at fault, when there is one, and prefix the
    one-line message. ``result`` is the command's own report (a validation or verification that
    found problems), which ``--json`` prints in the same document as the error.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}: " if row is None else f"{path}:{row}: "
        super().__init__(f"{where}{message}")
        self.message = f"{where}{message}"
        self.path = path
        self.row = row
        self.result: object | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        """The error as ``--json`` prints it: type, one-line message, exit code, file and row."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "exit_code": self.exit_code,
            "file": self.path,
            "row": self.row,
        }


class UsageError(QuantcliError):
    """The command line itself is wrong: an unknown option value, a malformed argument."""

    exit_code = 2


class NotFoundError(QuantcliError):
    """A named thing (dataset, version, tag, symbol, run, profile) does not exist."""


class DataError(QuantcliError):
    """Input data is invalid: malformed file, wrong columns, NaNs, duplicates, bad dates."""

    exit_code = 65


class ConflictError(QuantcliError):
    """An operation would overwrite or contradict existing state (e.g. append conflicts)."""


class IntegrityError(QuantcliError):
    """Stored data does not match its manifest (missing, extra, truncated or changed files)."""


class LockHeldError(QuantcliError):
    """Another process holds the lock; try again later."""

    exit_code = 75


class UnavailableError(QuantcliError):
    """Every provider of the data failed (network, HTTP errors) after its retries; the input may
    be fine, so a later run may succeed."""

    exit_code = 69


class CoverageError(QuantcliError):
    """A date is outside what a calendar, rate table or instrument master covers."""


class NotPromotedError(QuantcliError):
    """A statistical gate kept things as they are: the challenger did not beat the champion
    (``model promote``). Its own exit code, so a pipeline can tell "no" from "broken"."""

    exit_code = 3


class StrategyError(QuantcliError):
    """A user strategy failed to import, has bad parameters or raised while running."""
