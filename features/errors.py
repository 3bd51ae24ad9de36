"""Errors of the pure feature layer."""

from __future__ import annotations

import enum

__all__ = ["FeaturesError", "ParseError", "Reason"]


class FeaturesError(Exception):
    """Root of every error raised by `features`."""


class Reason(str, enum.Enum):
    """Why an input was refused: a fixed set, used as the dead-letter reason code."""

    EMPTY = "empty"
    NOT_UTF8 = "not_utf8"
    TOO_LARGE = "too_large"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_FORMAT = "unknown_format"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_VALUE = "bad_value"  # NaN/Infinity where a finite number is needed, negative counts, ...
    BAD_IP = "bad_ip"
    BAD_TIMESTAMP = "bad_timestamp"
    TIME_OUT_OF_RANGE = "time_out_of_range"  # far future or ancient
    AMBIGUOUS = "ambiguous"  # text the client wrote could have moved a field we would act on


class ParseError(FeaturesError):
    """Input that cannot become an `Event`; `reason` is one of `Reason`, `detail` says what exactly."""

    def __init__(self, reason: Reason, detail: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        super().__init__(f"{reason.value}: {detail}")
