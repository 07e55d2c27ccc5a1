"""careroute calibrate: line parsing, threshold variants, per-day counts, histogram, PNG, privacy."""

from __future__ import annotations

import io
import json
import struct
import zlib
from datetime import date

import pytest

from plugin.calibrate import (ExportTicket, LineProblem, Progress, Screened, cmd_calibrate,
                              histogram, parse_line, png_histogram, register, run, summarise,
                              text_report, variants)
from plugin.config import Thresholds
from plugin.model import Assessment
from plugin.screening import screen

SECRET_WORDS = "zebra-umbrella-4471"


def test_parse_line_reads_ids_times_and_locales():
    ticket = parse_line('{"id": 7, "text": "hi", "created_at": "2026-03-01T23:30:00Z", '
                        '"locale": "de"}', 1)
    assert isinstance(ticket, ExportTicket)
    assert (ticket.id, ticket.created_at.date(), ticket.locale) == ("7", date(2026, 3, 1), "de")
    epoch = parse_line('{"id": "a", "text": "x", "created_at": 86400}', 2)
    assert epoch.created_at.date() == date(1970, 1, 2)
    assert parse_line("   \n", 3) is None


@pytest.mark.parametrize("raw, reason", [
    (f"{SECRET_WORDS} not json", "not valid JSON"),
    (f'["{SECRET_WORDS}"]', "not a JSON object"),
    (f'{{"id": 1, "body": "{SECRET_WORDS}"}}', 'no "text" string'),
    (f'{{"text": "{SECRET_WORDS}"}}', 'no "id"'),
    (f'{{"id": 1, "text": "x", "created_at": "{SECRET_WORDS}"}}', '"created_at" is not'),
])
def test_bad_lines_name_the_line_and_never_the_content(raw, reason):
    problem = parse_line(raw, 12)
    assert isinstance(problem, LineProblem) and problem.line == 12
    assert problem.reason.startswith(reason)
    assert SECRET_WORDS not in problem.reason


def test_variants_move_each_boundary_and_skip_invalid_orderings():
    found = variants(Thresholds(concern=0.35, high=0.45, imminent=0.95))
    labels = [v.label for v in found]
    assert labels[0] == "current"
    assert "concern +0.05" in labels and "high -0.05" in labels
    assert "concern +0.10" not in labels  # 0.45 would not be below high 0.45
    assert "imminent +0.10" not in labels  # 1.05 is out of range
    moved = next(v for v in found if v.label == "high +0.10").thresholds
    assert (moved.concern, moved.high, moved.imminent) == (0.35, 0.55, 0.95)


def _items() -> list[Screened]:
    return [Screened("1", 0.0, (), date(2026, 1, 1)),
            Screened("2", 0.40, ("r.low",), date(2026, 1, 1)),
            Screened("3", 0.62, ("r.mid", "r.low"), date(2026, 1, 2)),
            Screened("4", 0.90, ("r.top",), date(2026, 1, 4))]


def test_summary_counts_per_day_over_the_created_at_span():
    result = summarise(_items(), Thresholds())
    assert (result.period_days, result.period_basis) == (4, "created_at")
    current = result.rows[0]
    assert current.per_tier == {"concern": 1, "high": 1, "imminent": 1}
    assert current.per_day["high"] == pytest.approx(0.25)
    lower = next(r for r in result.rows if r.variant.label == "high -0.10")  # high from 0.50
    assert lower.per_tier == {"concern": 1, "high": 1, "imminent": 1}
    raised = next(r for r in result.rows if r.variant.label == "concern +0.10")  # concern 0.45
    assert raised.per_tier["concern"] == 0
    assert result.top_rules["concern"] == [("r.low", 1)]
    assert dict(result.top_rules["high"]) == {"r.mid": 1, "r.low": 1}


def test_without_dates_the_period_comes_from_days_or_the_file():
    items = [Screened("1", 0.5, (), None), Screened("2", 0.7, (), date(2026, 1, 1))]
    assert summarise(items, Thresholds()).period_basis == "file"
    with_days = summarise(items, Thresholds(), days=10)
    assert (with_days.period_days, with_days.period_basis) == (10, "--days")
    assert with_days.rows[0].per_day["concern"] == pytest.approx(0.1)
    assert "whole file" in text_report(summarise(items, Thresholds()))


def test_histogram_bins_and_text_bars():
    assert histogram([0.0, 0.04, 0.05, 0.999, 1.0])[:2] == [2, 1]
    assert histogram([0.999, 1.0])[-1] == 2
    report = text_report(summarise(_items(), Thresholds()))
    assert "1 tickets scored 0" in report
    assert "0.40-0.45 |" + "#" * 40 in report and "0.35-0.40 |" + " " * 40 + "| 0  <- concern starts" in report


def test_png_is_a_real_png_of_the_requested_size():
    data = png_histogram(summarise(_items(), Thresholds()), width=200, height=100)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (200, 100)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_len])
    assert len(raw) == height * (1 + width * 3)
    assert b"\x5a\x6e\x8c" in raw  # bar colour present


def test_run_screens_the_file_and_keeps_text_only_when_asked(tmp_path):
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join([
        json.dumps({"id": 1, "text": "Where is my parcel?", "created_at": "2026-01-01T09:00:00Z"}),
        f"{SECRET_WORDS} broken line",
        json.dumps({"id": 2, "text": "I cant go on, tonight I will end it all, goodbye everyone",
                    "created_at": "2026-01-02T09:00:00Z"}),
    ]) + "\n")
    stream = io.StringIO()
    result = run(export, Thresholds(), screen=screen, progress=Progress(0, stream, True))
    assert [p.line for p in result.problems] == [2]
    assert result.calibration.tickets == 2
    assert result.calibration.rows[0].per_tier["imminent"] == 1
    assert result.flagged_texts == []
    assert "100%" in stream.getvalue()
    kept = run(export, Thresholds(), screen=screen, keep_text=True)
    assert [(t[0], t[1]) for t in kept.flagged_texts] == [("2", "imminent")]


def test_command_prints_no_text_unless_asked_and_writes_the_plot(tmp_path, capsys, monkeypatch):
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps({"id": "t1", "text": f"I cant go on, {SECRET_WORDS}"}) + "\n"
                      + f"{{bad {SECRET_WORDS}\n")
    import argparse
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["calibrate", str(export), "--plot", str(tmp_path / "h.png")])
    assert cmd_calibrate(args) == 0
    out, err = capsys.readouterr()
    assert SECRET_WORDS not in out + err
    assert "line 2: not valid JSON" in err
    assert (tmp_path / "h.png").read_bytes().startswith(b"\x89PNG")
    shown = parser.parse_args(["calibrate", str(export), "--show-text"])
    monkeypatch.setattr("plugin.screening.screen", lambda text, locale=None:
                        Assessment("high", 0.7, ()))
    cmd_calibrate(shown)
    assert SECRET_WORDS in capsys.readouterr().out


def test_tenant_thresholds_are_the_current_row(tmp_path, capsys):
    tenants = tmp_path / "tenants.toml"
    tenants.write_text('[[tenants]]\nid = "acme"\nvendor = "freshdesk"\n'
                       'domain = "acme.freshdesk.com"\nwebhook_secret = "s"\n'
                       'auth = { kind = "api_key", key = "k" }\n'
                       '[tenants.screening]\nconcern = 0.2\nhigh = 0.5\nimminent = 0.8\n')
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps({"id": 1, "text": "hello"}) + "\n")
    import argparse
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    cmd_calibrate(parser.parse_args(["calibrate", str(export), "--tenant", "acme",
                                     "--tenants", str(tenants)]))
    out = capsys.readouterr().out
    assert "tenant acme" in out
    assert "current         0.20 / 0.50 / 0.80" in out
