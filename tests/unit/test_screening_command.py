"""`careroute screen`: one text, JSONL in and out, and the evaluation table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from plugin.screening import command, screen


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="careroute")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["screen", *argv])
    return args.func(args)


def test_register_adds_screen_with_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--jsonl" in out and "--eval" in out and "--out" in out


def test_screen_text_shows_tier_score_and_highlighted_span(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["Please help, I want to kill myself. My order is late."]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tier: high")
    assert "score: 0." in out
    assert "en.active.kill_self" in out
    assert "I want to [[kill myself]]. My order is late." in out


def test_screen_text_without_signals(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["Where is my parcel?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tier: none") and "[[" not in out


def test_highlight_uses_ansi_on_a_terminal() -> None:
    text = "I want to kill myself"
    marked = command.highlight(text, screen(text), color=True)
    assert "\033[1;31m" in marked and "kill myself" in marked and "[[" not in marked


def test_no_text_and_no_mode_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2
    assert "give a TEXT" in capsys.readouterr().err


def test_jsonl_good_and_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    secret_text = "a private sentence that must never be echoed"
    source.write_text("\n".join([
        json.dumps({"id": "t1", "text": "Where is my parcel?"}),
        "{broken json " + secret_text,
        json.dumps({"id": "t2", "text": "I want to kill myself tonight", "locale": "en-GB"}),
        json.dumps({"id": "t3", "text": 42}),
        "",
        json.dumps({"id": "t4", "text": "Mi hijo dice que se quiere suicidar.", "locale": "es"}),
    ]) + "\n", encoding="utf-8")
    assert run(["--jsonl", str(source), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err and "line 4" in err
    assert secret_text not in err
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["t1", "t2", "t4"]
    assert records[0]["tier"] == "none" and records[0]["signals"] == []
    assert records[1]["tier"] == "imminent"
    assert records[2]["tier"] == "high"
    for record in records:
        assert set(record) >= {"id", "tier", "score", "signals"}
        for signal in record["signals"]:
            assert set(signal) == {"rule", "category", "start", "end"}
    text = "I want to kill myself tonight"
    assert any(text[s["start"]:s["end"]] == "kill myself" for s in records[1]["signals"])


def test_jsonl_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 7, "text": "all good, thanks"}) + "\n", encoding="utf-8")
    assert run(["--jsonl", str(source)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == 7


def test_missing_input_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--jsonl", str(tmp_path / "absent.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_eval_prints_a_table_with_both_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("\n".join(json.dumps(r) for r in [
        {"text": "Where is my parcel?", "tier": "none", "source": "shop"},
        {"text": "Sometimes I wish I was dead.", "tier": "high", "source": "bank"},
    ]) + "\n", encoding="utf-8")
    assert run(["--eval", str(labelled)]) == 0
    out = capsys.readouterr().out
    for needle in ("careroute", "keywords", "source=shop", "source=bank", "lang=und", "f.alarm"):
        assert needle in out
    assert "vader" in out or "sentiment baseline skipped" in out


def test_eval_rejects_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "x"}\n', encoding="utf-8")
    assert run(["--eval", str(labelled)]) == 2
    assert "line 1" in capsys.readouterr().err
