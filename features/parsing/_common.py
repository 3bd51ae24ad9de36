"""Shared input checks for the parsers: size, decoding, JSON loading and typed field access."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Any

import orjson

from ..errors import ParseError, Reason

MAX_MESSAGE_BYTES = 1_048_576
INT64_MAX = 2**63 - 1  # counts travel as int64 (Kafka JSON consumers, MongoDB)
# Measured quantities (durations, times) beyond this are refused: squared and summed in a window
# they must stay finite (1e200 ms overflowed a z-score to NaN), and none is that large for real.
MAX_FLOAT = 1e12
MAX_RESPONSE_MS = 1e9  # 11.6 days

_ECHO_CHARS = 80
# Dotted quads are meant as IPv4 addresses; when invalid they are an error, not a host name.
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_NONFINITE_WORDS = frozenset({"nan", "inf", "infinity"})


def echo(value: object) -> str:
    """A value as it may appear in an error detail: repr'd and cut to about 80 characters."""
    if isinstance(value, str) and len(value) > _ECHO_CHARS:
        return repr(value[:_ECHO_CHARS]) + "..."
    text = repr(value)
    return text if len(text) <= _ECHO_CHARS + 2 else text[:_ECHO_CHARS] + "..."


def to_text(raw: object) -> str:
    """Size-check, decode and strip one message; refuse empty, oversized and non-UTF-8 input."""
    if isinstance(raw, str):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ParseError(Reason.TOO_LARGE, f"message of {len(raw)} characters exceeds {MAX_MESSAGE_BYTES} bytes")
        if not raw.isascii():
            # A str may hold lone surrogates that no consumer could serialise; also gives the byte size.
            try:
                size = len(raw.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise ParseError(Reason.NOT_UTF8, f"text holds an unencodable character at {exc.start}") from None
            if size > MAX_MESSAGE_BYTES:
                raise ParseError(Reason.TOO_LARGE, f"message of {size} bytes exceeds {MAX_MESSAGE_BYTES}")
        text = raw
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw) if not isinstance(raw, bytes) else raw
        if len(data) > MAX_MESSAGE_BYTES:
            raise ParseError(Reason.TOO_LARGE, f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(
                Reason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}: {echo(data[exc.start:exc.start + 8])}"
            ) from None
    else:
        raise ParseError(Reason.WRONG_TYPE, f"message must be bytes or str, got {type(raw).__name__}")
    text = text.strip()
    if text.startswith("\ufeff"):  # a byte-order mark from editors and some shippers
        text = text[1:].lstrip()
    if not text:
        raise ParseError(Reason.EMPTY, "message is empty or whitespace")
    return text


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def load_object(text: str) -> dict[str, Any]:
    """Parse JSON text that must be one object."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "infinity" not in message:
            raise ParseError(Reason.BAD_JSON, f"invalid JSON: {message[:_ECHO_CHARS]}") from None
        # orjson refuses overflowing numbers such as 1e999; they are well-formed JSON, so read them as
        # inf with the stdlib and let the field checks report BAD_VALUE for the field concerned.
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
            orjson.dumps(value)  # the stdlib lets lone surrogates through; orjson (and every consumer) does not
        except (ValueError, RecursionError, orjson.JSONEncodeError) as exc2:
            raise ParseError(Reason.BAD_JSON, f"invalid JSON: {str(exc2)[:_ECHO_CHARS]}") from None
    if not isinstance(value, dict):
        raise ParseError(Reason.NOT_AN_OBJECT, f"JSON value is {_json_type(value)}, not an object")
    if _duplicate_key(text, value):
        raise ParseError(Reason.AMBIGUOUS, "a key appears twice in the JSON object; readers disagree on which "
                         "value counts (a log line built by pasting client text into JSON)")
    return value


def _duplicate_key(text: str, value: dict[str, Any]) -> bool:
    """Whether a top-level key of the object `text` holds appears more than once.

    orjson keeps the last of duplicate keys and other readers the first, so a client who can
    write into a JSON log line could choose which `src_ip` we see. Cheap unless a key's quoted
    text occurs twice or escapes are present (a key may be spelled with \\u escapes).
    """
    if "\\u" not in text and all(text.count(f'"{key}"') <= 1 for key in value):
        return False
    try:
        pairs = json.loads(text, object_pairs_hook=lambda items: items)
    except (ValueError, RecursionError):
        return False  # orjson read it; what the stdlib refuses is no duplicate
    keys = [key for key, _ in pairs] if isinstance(pairs, list) else []
    return len(keys) != len(set(keys))


def refuse_json_scalar(text: str) -> None:
    """Raise NOT_AN_OBJECT if text no other format claimed is a JSON scalar (number, string, true, null)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return
    raise ParseError(Reason.NOT_AN_OBJECT, f"JSON value is {_json_type(value)}, not an object: {echo(text)}")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def _missing(key: str) -> ParseError:
    return ParseError(Reason.MISSING_FIELD, f"required field {key!r} is absent or null", field=key)


def _wrong_type(key: str, value: object, wanted: str) -> ParseError:
    return ParseError(
        Reason.WRONG_TYPE, f"field {key!r} must be {wanted}, got {_json_type(value)} {echo(value)}", field=key
    )


def _looks_nonfinite(value: str) -> bool:
    return value.strip().lower().lstrip("+-") in _NONFINITE_WORDS


def get_str(obj: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """A string field; null counts as absent."""
    value = obj.get(key)
    if value is None:
        if required:
            raise _missing(key)
        return None
    if not isinstance(value, str):
        raise _wrong_type(key, value, "a string")
    return value


def get_int(
    obj: dict[str, Any], key: str, *, required: bool = False, lo: int = 0, hi: int = INT64_MAX
) -> int | None:
    """An integer field in [lo, hi]; integral floats are accepted, bools and strings are not."""
    value = obj.get(key)
    if value is None:
        if required:
            raise _missing(key)
        return None
    return check_int(value, key, lo=lo, hi=hi)


def check_int(value: object, key: str, *, lo: int = 0, hi: int = INT64_MAX) -> int:
    """Validate one JSON value as an integer in [lo, hi]."""
    if isinstance(value, bool):  # bool is an int subclass: true is not 1 packet
        raise _wrong_type(key, value, "an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ParseError(Reason.BAD_VALUE, f"field {key!r} is not finite: {value!r}", field=key)
        if not value.is_integer():
            raise ParseError(Reason.BAD_VALUE, f"field {key!r} must be a whole number, got {value!r}", field=key)
        if abs(value) > INT64_MAX:
            raise ParseError(Reason.BAD_VALUE, f"field {key!r} is out of range: {value!r}", field=key)
        number = int(value)
    elif isinstance(value, str) and _looks_nonfinite(value):
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} is not finite: {echo(value)}", field=key)
    else:
        raise _wrong_type(key, value, "an integer")
    if not lo <= number <= hi:
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} = {number} is outside {lo}..{hi}", field=key)
    return number


def get_float(obj: dict[str, Any], key: str, *, required: bool = False, lo: float = 0.0,
              hi: float = MAX_FLOAT) -> float | None:
    """A finite number field in [lo, hi]."""
    value = obj.get(key)
    if value is None:
        if required:
            raise _missing(key)
        return None
    if isinstance(value, bool):
        raise _wrong_type(key, value, "a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _looks_nonfinite(value):
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} is not finite: {echo(value)}", field=key)
    else:
        raise _wrong_type(key, value, "a number")
    if not math.isfinite(number):
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} is not finite: {value!r}", field=key)
    if number < lo:
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} = {number!r} is below {lo!r}", field=key)
    if number > hi:
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} = {number!r} is above {hi!r}", field=key)
    return number


def check_ip(value: str, key: str) -> str:
    """Normalise an IP address string; BAD_IP when it is not one."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ParseError(Reason.BAD_IP, f"field {key!r} is not an IP address: {echo(value)}", field=key) from None


def get_ip(obj: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    """An IP address field, normalised."""
    value = get_str(obj, key, required=required)
    return None if value is None else check_ip(value, key)


def split_remote(value: str, key: str) -> tuple[str | None, str | None]:
    """A remote peer as logged: (ip, None) for an address, (None, host) for a name, (None, None) if blank."""
    value = value.strip()
    if not value:
        return None, None
    try:
        return str(ipaddress.ip_address(value)), None
    except ValueError:
        pass
    if _DOTTED_QUAD.fullmatch(value):
        raise ParseError(Reason.BAD_IP, f"{key} is not a valid IP address: {echo(value)}", field=key)
    return None, value.lower()


def check_port(number: int, key: str) -> int:
    """Refuse port numbers outside 0..65535."""
    if not 0 <= number <= 65535:
        raise ParseError(Reason.BAD_VALUE, f"field {key!r} = {number} is not a port (0..65535)", field=key)
    return number
