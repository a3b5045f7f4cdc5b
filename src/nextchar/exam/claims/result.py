"""What every claim experiment returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClaimResult:
    number: int
    statement: str
    verdict: bool
    """Whether the measured evidence says the exam's claim is true."""
    evidence: dict[str, Any]
    explanation: str
    """Which evidence decided the verdict, in words."""
    figures: dict[str, Any] = field(default_factory=dict)
    """name -> matplotlib Figure; written as ``claim{N}_{name}.png``."""

    def to_json(self) -> dict:
        return {"statement": self.statement, "verdict": self.verdict, "evidence": self.evidence,
                "explanation": self.explanation}
