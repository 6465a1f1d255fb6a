"""The verdict on one property: what ``check`` prints and writes, live or offline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PropertyResult:
    name: str
    status: str  # "pass", "FAIL", "unsupported", "error"
    examples: int = 0  # examples run, shrinking steps included
    seconds: float = 0.0
    message: str = ""
    case: str = ""  # the minimal failing case, described
    reproduction: str = ""
    verdicts: list = field(default_factory=list)  # Verdict.to_dict() of the failure
    declined: int = 0  # examples on which the candidate raised NotImplementedError
    note: str = ""  # how the case was found (e.g. "not shrunk: ...")
    failed: int = 0  # examples that failed (while searching and shrinking)
    drawn: object = None  # the failing case as drawn (not serialised)

    @property
    def checked(self) -> int:
        """Examples the candidate ran and that were judged."""
        return self.examples - self.declined

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "drawn"}
        d["checked"] = self.checked
        return d
