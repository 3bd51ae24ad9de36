"""Tests of the CICFlowMeter CSV parser: both header variants, files and header-less rows, real-data quirks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from features.errors import ParseError, Reason
from features.events import Event, EventKind
from features.parsing import is_cicflowmeter_header, parse_flow, parse_line, read_cicflowmeter_csv

UTC = UTC
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data" / "cicids2017"
DDOS = DATA / "ddos_part1_head40.csv"
PORTSCAN = DATA / "portscan_part1_head40.csv"
BENIGN = DATA / "thursday_benign_head40.csv"

# Rows 136 and 360 of the CICIDS2017 Thursday file: zero-duration flows with Infinity rates.
INFINITY_ROW = (
    "389,0,2,0,7,0,7,0,3.5,4.949747468,0,0,0,0,Infinity,Infinity,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,64,0,0,0,0,7,"
    "4.666666667,4.041451884,16.33333333,0,1,0,0,1,0,0,0,0,7,3.5,0,64,0,0,0,0,0,0,2,7,0,0,237,-1,0,32,0,0,0,0,0,0,0,0,"
    "BENIGN"
)
INFINITY_ROW_2 = (
    "49174,0,1,1,6,6,6,6,6,0,6,6,6,0,Infinity,Infinity,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,20,20,0,0,6,6,6,0,0,0,0,0,"
    "0,1,0,0,0,1,9,6,6,20,0,0,0,0,0,0,1,6,1,6,2053,256,0,20,0,0,0,0,0,0,0,0,BENIGN"
)


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[1:]


def _events(path: Path) -> list[Event]:
    items = list(read_cicflowmeter_csv(path, now=NOW))
    assert not [item for item in items if isinstance(item, ParseError)]
    return items  # type: ignore[return-value]


def test_85_column_ddos_file() -> None:
    events = _events(DDOS)
    assert len(events) == 40
    ev = events[0]
    assert (ev.kind, ev.source, ev.label) == (EventKind.FLOW, "cicflowmeter", "ddos")
    assert (ev.src_ip, ev.src_port, ev.dst_ip, ev.dst_port, ev.protocol) == ("172.16.0.1", 49650, "192.168.10.50", 80, 6)
    assert ev.ts == datetime(2017, 7, 7, 3, 56, tzinfo=UTC)
    assert ev.duration_s == pytest.approx(1.293792)
    assert (ev.fwd_packets, ev.bwd_packets, ev.fwd_bytes, ev.bwd_bytes) == (3, 7, 26, 11607)
    assert (ev.fin_count, ev.syn_count, ev.rst_count, ev.psh_count, ev.ack_count, ev.urg_count) == (0, 0, 0, 1, 0, 0)
    assert ev.extra["flow_bytes_s"] == pytest.approx(8991.398927)
    assert ev.extra["flow_iat_mean"] == pytest.approx(143754.6667)
    assert ev.extra["init_win_bytes_forward"] == 8192.0
    assert ev.extra["init_win_bytes_backward"] == 229.0
    assert ev.extra["fwd_header_length"] == 72.0 and ev.extra["fwd_header_length_1"] == 72.0
    assert ev.extra["down_up_ratio"] == 2.0
    assert ev.extra["nonfinite_fields"] == 0
    # mapped columns are not duplicated into extra; everything else numeric is there
    assert "flow_duration" not in ev.extra and "label" not in ev.extra and "source_ip" not in ev.extra
    assert len(ev.extra) == 85 - 19 + 1


def test_85_column_portscan_file() -> None:
    events = _events(PORTSCAN)
    assert len(events) == 40 and {ev.label for ev in events} == {"port_scan"}
    ev = events[0]
    assert (ev.src_port, ev.dst_port, ev.ts) == (40620, 80, datetime(2017, 7, 7, 1, 5, tzinfo=UTC))
    assert ev.duration_s == pytest.approx(5.021059)
    assert ev.extra["init_win_bytes_forward"] == 29200.0


def test_79_column_benign_file() -> None:
    events = _events(BENIGN)
    assert len(events) == 40 and {ev.label for ev in events} == {"benign"}
    ev = events[0]
    assert (ev.dst_port, ev.protocol, ev.src_ip, ev.dst_ip, ev.src_port) == (389, 6, None, None, None)
    assert ev.ts == NOW  # the variant carries no time
    assert ev.duration_s == pytest.approx(113.095465)
    assert (ev.fwd_packets, ev.bwd_packets, ev.fwd_bytes, ev.bwd_bytes) == (48, 24, 9668, 10012)
    assert (ev.syn_count, ev.ack_count) == (1, 1)
    assert ev.extra["fwd_header_length"] == 1536.0 and ev.extra["fwd_header_length_1"] == 1536.0
    assert set(ev.extra) == set(_events(DDOS)[0].extra)  # both variants give the same extra keys
    dns = [e for e in events if e.dst_port == 53]
    assert dns and all(e.protocol == 17 for e in dns)


def test_infinity_is_zeroed_and_counted() -> None:
    for row in (INFINITY_ROW, INFINITY_ROW_2):
        ev = parse_flow(row, now=NOW)
        assert ev.extra["flow_bytes_s"] == 0.0 and ev.extra["flow_packets_s"] == 0.0
        assert ev.extra["nonfinite_fields"] == 2
        assert ev.duration_s == 0.0 and ev.label == "benign"
    assert parse_flow(INFINITY_ROW, now=NOW).extra["init_win_bytes_backward"] == -1.0  # real data, kept as is
    nan_row = INFINITY_ROW.replace("Infinity,Infinity", "NaN,inf", 1)
    assert parse_line(nan_row, now=NOW).extra["nonfinite_fields"] == 2


def test_header_less_rows_on_the_wire_match_the_file_reader() -> None:
    for path in (DDOS, BENIGN):
        row = _rows(path)[5]
        from_file = _events(path)[5]
        for parser in (parse_flow, parse_line):
            assert parser(row, now=NOW) == from_file
            assert parser(row.encode() + b"\r\n", now=NOW) == from_file


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f.__setitem__(8, "ten"), Reason.WRONG_TYPE),  # Total Fwd Packets
        (lambda f: f.__setitem__(8, "-3"), Reason.BAD_VALUE),
        (lambda f: f.__setitem__(8, "Infinity"), Reason.BAD_VALUE),
        (lambda f: f.__setitem__(8, ""), Reason.MISSING_FIELD),
        (lambda f: f.__setitem__(4, "70000"), Reason.BAD_VALUE),  # Destination Port
        (lambda f: f.__setitem__(1, "172.16.0.300"), Reason.BAD_IP),
        (lambda f: f.__setitem__(6, "31/31/2017 3:56"), Reason.BAD_TIMESTAMP),
        (lambda f: f.__setitem__(6, "7/7/2031 3:56"), Reason.TIME_OUT_OF_RANGE),
        (lambda f: f.__setitem__(30, "abc"), Reason.WRONG_TYPE),  # an extra column
    ],
)
def test_bad_cells(mutate, reason: Reason) -> None:
    fields = _rows(DDOS)[0].split(",")
    mutate(fields)
    with pytest.raises(ParseError) as info:
        parse_flow(",".join(fields), now=NOW)
    assert info.value.reason is reason, info.value.detail
    assert info.value.field


def test_timestamp_forms() -> None:
    fields = _rows(DDOS)[0].split(",")
    for text, expected in [
        ("7/7/2017 3:56:12", datetime(2017, 7, 7, 3, 56, 12, tzinfo=UTC)),
        ("7/7/2017 3:56:12 PM", datetime(2017, 7, 7, 15, 56, 12, tzinfo=UTC)),
        ("3/7/2017 8:55", datetime(2017, 7, 3, 8, 55, tzinfo=UTC)),  # CIC writes day/month/year
        ("14/02/2018 08:31:01", datetime(2018, 2, 14, 8, 31, 1, tzinfo=UTC)),
        ("7/14/2017 10:00", datetime(2017, 7, 14, 10, 0, tzinfo=UTC)),  # only month-first is possible
    ]:
        fields[6] = text
        assert parse_flow(",".join(fields), now=NOW).ts == expected


def test_file_reader_keeps_going_after_bad_rows(tmp_path: Path) -> None:
    lines = DDOS.read_text(encoding="utf-8").splitlines()
    header, good = lines[0], lines[1:4]
    short = ",".join(good[0].split(",")[:50])
    bad_ip = good[1].replace("172.16.0.1,", "not-an-ip,", 1)
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join([header, good[0], short, "", bad_ip, good[2]]) + "\n", encoding="utf-8")
    items = list(read_cicflowmeter_csv(path, now=NOW))
    assert [type(item).__name__ for item in items] == ["Event", "ParseError", "ParseError", "Event"]
    assert items[1].reason is Reason.UNKNOWN_FORMAT and items[1].detail.startswith("line 3:")  # type: ignore[union-attr]
    assert items[2].reason is Reason.BAD_IP and items[2].detail.startswith("line 5:")  # type: ignore[union-attr]


def test_unrecognised_header(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    items = list(read_cicflowmeter_csv(path, now=NOW))
    assert len(items) == 1 and isinstance(items[0], ParseError) and items[0].reason is Reason.UNKNOWN_FORMAT


def test_non_utf8_label_bytes(tmp_path: Path) -> None:
    header = BENIGN.read_bytes().split(b"\n", 1)[0]
    row = _rows(BENIGN)[0].rsplit(",", 1)[0].encode()
    path = tmp_path / "webattack.csv"
    path.write_bytes(
        header + b"\r\n"
        + row + b",Web Attack \x96 Brute Force\r\n"  # cp1252 en dash, as in the real Thursday file
        + row + b",Web Attack \xc2\x96 XSS\r\n"  # the same dash as a UTF-8 encoded C1 control
        + row + b",Web Attack \xe2\x80\x93 Sql Injection\r\n"  # a real UTF-8 en dash
    )  # fmt: skip
    labels = [item.label for item in read_cicflowmeter_csv(path, now=NOW)]  # type: ignore[union-attr]
    assert labels == ["web_attack_brute_force", "web_attack_xss", "web_attack_sql_injection"]
    # On the wire a lone 0x96 is not UTF-8: that message is refused, not crashed on.
    with pytest.raises(ParseError) as info:
        parse_flow(row + b",Web Attack \x96 Brute Force", now=NOW)
    assert info.value.reason is Reason.NOT_UTF8
    assert parse_flow(row + b",Web Attack \xc2\x96 XSS", now=NOW).label == "web_attack_xss"


def test_bounds_apply_to_timestamped_rows() -> None:
    row = _rows(DDOS)[0]
    with pytest.raises(ParseError) as info:
        parse_flow(row, now=datetime(2016, 1, 1, tzinfo=UTC))
    assert info.value.reason is Reason.TIME_OUT_OF_RANGE
    assert parse_flow(row, now=datetime(2016, 1, 1, tzinfo=UTC), bounds=None).ts.year == 2017


# --- header detection ------------------------------------------------------------------------


def _first_line(path: Path) -> bytes:
    return path.read_bytes().split(b"\n", 1)[0]


@pytest.mark.parametrize("path", [DDOS, PORTSCAN, BENIGN], ids=["85-ddos", "85-portscan", "79-benign"])
def test_header_of_either_variant_is_recognised(path: Path) -> None:
    line = _first_line(path)
    assert is_cicflowmeter_header(line)
    assert is_cicflowmeter_header(line.decode("utf-8"))
    assert is_cicflowmeter_header(line + b"\r\n")


def test_header_may_start_with_a_bom_or_spaces() -> None:
    assert _first_line(BENIGN).startswith(b" Destination Port, Flow Duration,")  # the 79-column files do
    for path in (DDOS, BENIGN):
        line = _first_line(path)
        assert is_cicflowmeter_header(b"\xef\xbb\xbf" + line)
        assert is_cicflowmeter_header("\ufeff" + line.decode("utf-8"))
        assert is_cicflowmeter_header(b"   " + line.lstrip())


def test_rows_and_other_csv_headers_are_not_headers() -> None:
    assert not is_cicflowmeter_header(DDOS.read_bytes().split(b"\n")[1])  # an 85-column data row
    assert not is_cicflowmeter_header(BENIGN.read_bytes().split(b"\n")[1])  # a 79-column data row
    assert not is_cicflowmeter_header(INFINITY_ROW)
    assert not is_cicflowmeter_header(b"id,name,email,created_at")
    assert not is_cicflowmeter_header(b"Flow ID,Source IP,Source Port,Destination IP")  # a prefix is not enough
    assert not is_cicflowmeter_header(b"\xef\xbb\xbf")
    assert not is_cicflowmeter_header(b"")
    assert not is_cicflowmeter_header(b"Jan  5 09:00:01 bastion sshd[4242]: Accepted publickey for deploy")


def test_header_detection_agrees_with_the_file_reader(tmp_path: Path) -> None:
    """A first line is a header exactly when the reader accepts it (it yields nothing for a header alone)."""
    names_85 = _first_line(DDOS).decode("utf-8").split(",")
    lines = [
        _first_line(DDOS),
        _first_line(BENIGN),
        b"\xef\xbb\xbf" + _first_line(PORTSCAN),
        ",".join(reversed(names_85)).encode(),  # every column a flow needs, in another order
        b"a,b,c",
        b"Flow ID,Source IP,Source Port,Destination IP",
        DDOS.read_bytes().split(b"\n")[1],
    ]
    for i, line in enumerate(lines):
        path = tmp_path / f"{i}.csv"
        path.write_bytes(line + b"\n")
        accepted = list(read_cicflowmeter_csv(path, now=NOW)) == []
        assert is_cicflowmeter_header(line) is accepted, line[:40]
