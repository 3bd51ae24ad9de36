"""Raw log lines and flow records to normalised `Event`s; every refusal is a `ParseError` with a `Reason`.

Pure Python (stdlib + orjson): no Kafka, Faust, MongoDB or Prometheus imports.
"""

from ._common import MAX_MESSAGE_BYTES
from ._dispatch import parse_flow, parse_line, parse_log, read_log_file
from ._time import TimeBounds
from .cicflowmeter import is_cicflowmeter_header, read_cicflowmeter_csv
from .flows import normalise_label

__all__ = [
    "MAX_MESSAGE_BYTES",
    "TimeBounds",
    "is_cicflowmeter_header",
    "normalise_label",
    "parse_flow",
    "parse_line",
    "parse_log",
    "read_cicflowmeter_csv",
    "read_log_file",
]
