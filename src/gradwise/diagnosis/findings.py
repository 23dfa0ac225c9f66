"""What a diagnosis says: findings, each with evidence and ordered fixes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEMS = (
    "vanishing_gradient",
    "exploding_gradient",
    "saturated_activations",
    "dead_units",
    "diverging_loss",
    "oscillating_loss",
    "slow_convergence",
    "unscaled_inputs",
)
SEVERITIES = ("info", "warning", "critical")


class Fix(str):
    """One remedy: the words themselves, plus ``changes`` for a TrainConfig where possible.

    A Fix *is* its text, so ``"normalize inputs with minmax" in finding.fixes`` holds, and
    ``config.replace(**fix.changes)`` applies it.

    >>> fix = Fix("lower the learning rate to about 1e-3", {"lr": 1e-3})
    >>> fix == "lower the learning rate to about 1e-3", fix.changes
    (True, {'lr': 0.001})
    """

    changes: dict[str, Any]
    cure: str | None  # a short name of the remedy, for fixes made in a model's code (``"pre_norm"``)

    def __new__(cls, text: str, changes: dict[str, Any] | None = None, cure: str | None = None) -> "Fix":
        fix = super().__new__(cls, text)
        fix.changes = dict(changes or {})
        fix.cure = cure
        return fix

    @property
    def text(self) -> str:
        return str(self)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "changes": dict(self.changes), "cure": self.cure}


@dataclass
class Finding:
    """One named problem, where it is, the numbers that show it, and what to do.

    ``origin`` is "setup" when the problem is visible from the first observed steps (the
    initialization, the data or the architecture causes it) and "training" when it appeared
    later (usually the step size); a diagnosis lists set-up causes first.
    """

    problem: str
    severity: str
    layers: list[str]
    evidence: dict[str, Any]
    fixes: list[Fix]
    explanation: str = ""
    origin: str = "setup"

    def __post_init__(self) -> None:
        assert self.problem in PROBLEMS, self.problem
        assert self.severity in SEVERITIES, self.severity

    @property
    def severity_rank(self) -> int:
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "severity": self.severity,
            "layers": list(self.layers),
            "evidence": self.evidence,
            "fixes": [f.text for f in self.fixes],
            "fix_changes": [f.to_dict() for f in self.fixes],
            "explanation": self.explanation,
            "origin": self.origin,
        }


@dataclass
class Diagnosis:
    """Findings (most important first) and the per-layer summary they were drawn from."""

    findings: list[Finding]
    layers: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        """True when no finding is above info."""
        return all(f.severity == "info" for f in self.findings)

    @property
    def main(self) -> Finding | None:
        """The finding to act on first (None when healthy)."""
        serious = [f for f in self.findings if f.severity != "info"]
        return serious[0] if serious else None

    def problems(self) -> list[str]:
        return [f.problem for f in self.findings]

    def _repr_html_(self) -> str:
        """Findings and the per-layer table as HTML, for notebooks (see gradwise.reporting)."""
        from ..reporting.notebook import diagnosis_html

        return diagnosis_html(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "findings": [f.to_dict() for f in self.findings],
            "layers": self.layers,
            "summary": self.summary,
        }
