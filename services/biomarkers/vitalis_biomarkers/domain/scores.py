"""Stored scores: a value with everything needed to reproduce it, never overwritten."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from vitalis_biomarkers.domain.scoring import InputValue, ScoreIssue


class ScoreStatus(enum.Enum):
    """The quality of a value (values match the contract)."""

    UNSPECIFIED = 0
    OK = 1
    FLAGGED = 2


class ScoreState(enum.Enum):
    """Whether a score is the one to show (values match the contract)."""

    UNSPECIFIED = 0
    CURRENT = 1
    SUPERSEDED = 2
    OUTDATED = 3


class ScoreTrigger(enum.Enum):
    """Why a score was computed (values match the contract)."""

    UNSPECIFIED = 0
    PANEL_CREATED = 1
    INPUT_CHANGED = 2
    REQUESTED = 3
    FORMULA_VERSION = 4


@dataclass(frozen=True)
class ScoreKey:
    """What makes two scores versions of one another: a sample (panel) under one formula version and set."""

    panel_id: uuid.UUID
    formula_id: str
    formula_version: str
    coefficient_set: str


@dataclass(frozen=True)
class Score:
    """A derived score of one user at one sample."""

    user_id: uuid.UUID
    id: uuid.UUID
    key: ScoreKey
    value: float
    unit: str
    status: ScoreStatus
    issues: tuple[ScoreIssue, ...]
    inputs: tuple[InputValue, ...]
    intermediates: Mapping[str, float]
    age_at_sample_years: float | None
    sample_time: datetime
    state: ScoreState
    trigger: ScoreTrigger
    compute_time: datetime
    superseded_by: uuid.UUID | None = None

    @property
    def name(self) -> str:
        """``users/{user}/scores/{score}``."""
        return f"users/{self.user_id}/scores/{self.id}"
