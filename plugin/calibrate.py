"""`careroute calibrate EXPORT.jsonl`: what would each threshold setting flag on past tickets?

The export holds one ticket a line: {"id", "text", "created_at"?, "locale"?}. Every ticket is
screened locally; only its id, score, rule ids and day are kept, so ticket text never leaves this
process and is printed only with --show-text. For the current thresholds (the tenant's, or the
defaults) and for each boundary moved by ±0.05 and ±0.10, the report shows tickets per day in
each tier and the rules that put tickets in each tier, then a histogram of scores.

Per day: the days spanned by `created_at` (first to last, inclusive) when every ticket has one;
otherwise `--days N` if given; otherwise plain counts for the whole file. The report says which.

The PNG (--plot) is drawn by a tiny writer here (zlib + struct, bars on a canvas, threshold lines
in tier colours, no text): matplotlib would be a heavy runtime dependency for one picture.

Pure parts (`parse_line`, `variants`, `summarise`, `histogram`, `text_report`, `png_histogram`)
take and return plain data; `run` and `cmd_calibrate` do the I/O.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TextIO

from .config import Thresholds
from .model import ACTION_TIERS, Assessment

STEPS = (-0.10, -0.05, 0.05, 0.10)
BIN_WIDTH = 0.05
TOP_RULES = 5
BAR_WIDTH = 40


# ------------------------------------------------------------------ reading lines (pure)


@dataclass(frozen=True)
class ExportTicket:
    id: str
    text: str
    created_at: datetime | None = None
    locale: str | None = None

    def __repr__(self) -> str:  # the text stays out of any repr
        return f"ExportTicket(id={self.id!r}, created_at={self.created_at!r})"


@dataclass(frozen=True)
class LineProblem:
    line: int
    reason: str  # written by us; never contains the line's content


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    raise ValueError


def parse_line(raw: str, line: int) -> ExportTicket | LineProblem | None:
    """One export line → a ticket, a problem naming the line, or None for a blank line."""
    if not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return LineProblem(line, "not valid JSON")
    if not isinstance(data, dict):
        return LineProblem(line, "not a JSON object")
    if not isinstance(data.get("text"), str):
        return LineProblem(line, "no \"text\" string")
    ticket_id = data.get("id")
    if not isinstance(ticket_id, (str, int)) or isinstance(ticket_id, bool) or ticket_id == "":
        return LineProblem(line, "no \"id\" (string or number)")
    created = None
    if data.get("created_at") is not None:
        try:
            created = _timestamp(data["created_at"])
        except (ValueError, OverflowError, OSError):
            return LineProblem(line, "\"created_at\" is not an ISO 8601 time or a Unix time")
    locale = data.get("locale") if isinstance(data.get("locale"), str) else None
    return ExportTicket(str(ticket_id), data["text"], created, locale)


# ------------------------------------------------------------------ counting (pure)


@dataclass(frozen=True)
class Screened:
    """What calibration keeps of one ticket: no text."""

    id: str
    score: float
    rule_ids: tuple[str, ...]
    day: date | None


def screened(ticket: ExportTicket, assessment: Assessment) -> Screened:
    return Screened(ticket.id, float(assessment.score), assessment.rule_ids,
                    ticket.created_at.date() if ticket.created_at else None)


@dataclass(frozen=True)
class Variant:
    label: str
    thresholds: Thresholds


def variants(base: Thresholds, steps: Sequence[float] = STEPS) -> list[Variant]:
    """The current thresholds, then each boundary moved by each step (invalid ones left out)."""
    found = [Variant("current", base)]
    for tier in ACTION_TIERS:
        for step in steps:
            values = base.model_dump()
            values[tier] = round(values[tier] + step, 4)
            try:
                candidate = Thresholds(**values)
            except ValueError:  # out of [0, 1] or no longer rising
                continue
            found.append(Variant(f"{tier} {step:+.2f}", candidate))
    return found


@dataclass(frozen=True)
class VariantCounts:
    variant: Variant
    per_tier: dict[str, int]  # tickets in each action tier
    per_day: dict[str, float]  # the same, divided by the period


@dataclass(frozen=True)
class Calibration:
    tickets: int
    period_days: int | None
    period_basis: str  # "created_at" | "--days" | "file"
    rows: tuple[VariantCounts, ...]
    top_rules: dict[str, list[tuple[str, int]]]  # tier → [(rule id, tickets)], current thresholds
    scores: tuple[float, ...] = field(repr=False, default=())


def period(items: Sequence[Screened], days: int | None) -> tuple[int | None, str]:
    dated = [s.day for s in items if s.day is not None]
    if items and len(dated) == len(items):
        return (max(dated) - min(dated)).days + 1, "created_at"
    if days:
        return days, "--days"
    return None, "file"


def summarise(items: Sequence[Screened], base: Thresholds, *, days: int | None = None,
              steps: Sequence[float] = STEPS) -> Calibration:
    span, basis = period(items, days)
    rows = []
    for variant in variants(base, steps):
        tiers = Counter(variant.thresholds.tier_for(s.score) for s in items)
        per_tier = {t: tiers.get(t, 0) for t in ACTION_TIERS}
        divisor = span or 1
        rows.append(VariantCounts(variant, per_tier,
                                  {t: n / divisor for t, n in per_tier.items()}))
    top: dict[str, list[tuple[str, int]]] = {}
    for tier in ACTION_TIERS:
        rules = Counter(rule for s in items if base.tier_for(s.score) == tier
                        for rule in dict.fromkeys(s.rule_ids))
        top[tier] = rules.most_common(TOP_RULES)
    return Calibration(len(items), span, basis, tuple(rows), top, tuple(s.score for s in items))


def histogram(scores: Iterable[float], width: float = BIN_WIDTH) -> list[int]:
    """Counts per score bin [0, w), [w, 2w) … with 1.0 in the last bin."""
    bins = [0] * round(1 / width)
    for score in scores:
        bins[min(len(bins) - 1, max(0, int(score / width + 1e-9)))] += 1
    return bins


# ------------------------------------------------------------------ the report (pure)


def _rate(value: float) -> str:
    if value == 0:
        return "0"
    if value < 0.1:
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def text_report(result: Calibration) -> str:
    lines: list[str] = []
    if result.period_basis == "created_at":
        lines.append(f"{result.tickets} tickets over {result.period_days} days (from created_at).")
        unit = "per day"
    elif result.period_basis == "--days":
        lines.append(f"{result.tickets} tickets over {result.period_days} days (from --days; "
                     "the export has no created_at on every line).")
        unit = "per day"
    else:
        lines.append(f"{result.tickets} tickets; no created_at on every line, so these are counts "
                     "for the whole file (pass --days N for rates per day).")
        unit = "in file"
    lines.append("")
    header = (f"{'thresholds':<16}{'concern/high/imminent':<24}"
              + "".join(f"{t + ' ' + unit:>18}" for t in ACTION_TIERS) + f"{'flagged':>10}")
    lines.append(header)
    lines.append("-" * len(header))
    for row in result.rows:
        t = row.variant.thresholds
        if result.period_days:
            cells = [_rate(row.per_day[tier]) for tier in ACTION_TIERS]
            total = _rate(sum(row.per_day.values()))
        else:
            cells = [str(row.per_tier[tier]) for tier in ACTION_TIERS]
            total = str(sum(row.per_tier.values()))
        bounds = f"{t.concern:.2f} / {t.high:.2f} / {t.imminent:.2f}"
        lines.append(f"{row.variant.label:<16}{bounds:<24}"
                     + "".join(f"{cell:>18}" for cell in cells) + f"{total:>10}")
    lines.append("")
    lines.append("Rules behind each tier (current thresholds; tickets per rule):")
    for tier in ACTION_TIERS:
        rules = result.top_rules.get(tier) or []
        listed = ", ".join(f"{rule} ({n})" for rule, n in rules) if rules else "none"
        lines.append(f"  {tier:<9} {listed}")
    lines.append("")
    lines.extend(text_histogram(result))
    return "\n".join(lines) + "\n"


def text_histogram(result: Calibration) -> list[str]:
    current = result.rows[0].variant.thresholds if result.rows else Thresholds()
    zero = sum(1 for s in result.scores if s <= 0.0)
    bins = histogram(s for s in result.scores if s > 0.0)
    peak = max(bins) if any(bins) else 1
    marks = {round(getattr(current, t) / BIN_WIDTH): t for t in ACTION_TIERS}
    lines = [f"Scores (each bar {BIN_WIDTH:.2f} wide; {zero} tickets scored 0, not drawn):"]
    for index, count in enumerate(bins):
        start = index * BIN_WIDTH
        bar = "#" * (round(count / peak * BAR_WIDTH) if count else 0)
        mark = f"  <- {marks[index]} starts" if index in marks else ""
        lines.append(f"  {start:4.2f}-{start + BIN_WIDTH:4.2f} |{bar:<{BAR_WIDTH}}| {count}{mark}")
    return lines


_TIER_RGB = {"concern": (214, 162, 0), "high": (214, 94, 0), "imminent": (178, 24, 43)}


def png_histogram(result: Calibration, *, width: int = 640, height: int = 320) -> bytes:
    """The histogram of non-zero scores as a PNG: grey bars, one vertical line per threshold."""
    margin = 20
    canvas = [[(255, 255, 255)] * width for _ in range(height)]
    bins = histogram(s for s in result.scores if s > 0.0)
    peak = max(bins) if any(bins) else 1
    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    bar_w = plot_w / len(bins)
    for index, count in enumerate(bins):
        top = height - margin - round(count / peak * plot_h)
        for x in range(margin + round(index * bar_w) + 1, margin + round((index + 1) * bar_w) - 1):
            for y in range(top, height - margin):
                canvas[y][x] = (90, 110, 140)
    for x in range(margin, width - margin):  # the axis
        canvas[height - margin][x] = (0, 0, 0)
    current = result.rows[0].variant.thresholds if result.rows else Thresholds()
    for tier in ACTION_TIERS:
        x = margin + round(getattr(current, tier) * plot_w)
        for y in range(margin, height - margin):
            for dx in (0, 1):
                canvas[y][min(width - 1, x + dx)] = _TIER_RGB[tier]
    return encode_png(canvas)


def encode_png(rows: Sequence[Sequence[tuple[int, int, int]]]) -> bytes:
    """RGB rows → PNG bytes (8-bit truecolour, filter 0 on every row)."""
    height, width = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(v for pixel in row for v in pixel) for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------ I/O


class Progress:
    """A one-line progress bar on a stream; silent unless enabled."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = max(total, 1), stream, enabled
        self._shown = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent != self._shown:
            self._shown = percent
            filled = percent * 30 // 100
            self.stream.write(f"\rscreening [{'#' * filled:<30}] {percent:3d}% ({done}/{self.total})")
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class RunResult:
    calibration: Calibration
    problems: list[LineProblem]
    flagged_texts: list[tuple[str, str, float, str]]  # (id, tier, score, text), only if asked


def run(path: Path, thresholds: Thresholds, *, screen: Callable[..., Assessment],
        days: int | None = None, keep_text: bool = False,
        progress: Progress | None = None) -> RunResult:
    """Screen every line of the export; keep texts only when `keep_text` (--show-text)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        total = sum(1 for _ in handle)
    progress = progress or Progress(total, sys.stderr, False)
    progress.total = max(total, 1)
    items: list[Screened] = []
    problems: list[LineProblem] = []
    texts: list[tuple[str, str, float, str]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            parsed = parse_line(raw, number)
            if isinstance(parsed, LineProblem):
                problems.append(parsed)
            elif parsed is not None:
                assessment = screen(parsed.text, locale=parsed.locale)
                items.append(screened(parsed, assessment))
                tier = thresholds.tier_for(assessment.score)
                if keep_text and tier != "none":
                    texts.append((parsed.id, tier, assessment.score, parsed.text))
            if number % 50 == 0 or number == total:
                progress.update(number)
    progress.finish()
    return RunResult(summarise(items, thresholds, days=days), problems, texts)


def _thresholds(args: argparse.Namespace) -> Thresholds:
    if not args.tenant:
        return Thresholds()
    from .config import ServiceSettings, load_tenants
    from .errors import ConfigError

    tenants_file = args.tenants_file or ServiceSettings().tenants_file
    if tenants_file is None:
        raise ConfigError("--tenant needs a tenants file: pass --tenants FILE "
                          "or set CAREROUTE_TENANTS_FILE")
    tenants = load_tenants(Path(tenants_file))
    if args.tenant not in tenants:
        raise ConfigError(f"tenant {args.tenant!r} is not in {tenants_file}")
    return tenants[args.tenant].screening


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .screening import screen

    path = Path(args.export)
    if not path.is_file():
        raise ConfigError(f"export file not found: {path}")
    thresholds = _thresholds(args)
    show_progress = args.progress or sys.stderr.isatty()
    result = run(path, thresholds, screen=screen, days=args.days, keep_text=args.show_text,
                 progress=Progress(0, sys.stderr, show_progress))
    for problem in result.problems[:20]:
        print(f"careroute: {path.name}: line {problem.line}: {problem.reason} (skipped)",
              file=sys.stderr)
    if len(result.problems) > 20:
        print(f"careroute: {path.name}: {len(result.problems) - 20} more bad lines skipped",
              file=sys.stderr)
    source = f"tenant {args.tenant}" if args.tenant else "defaults"
    print(f"Current thresholds: {source}.")
    sys.stdout.write(text_report(result.calibration))
    if args.show_text:
        print("\nFlagged tickets (current thresholds; texts shown because of --show-text):")
        for ticket_id, tier, score, text in result.flagged_texts:
            print(f"  {ticket_id}  {tier}  {score:.2f}  {' '.join(text.split())}")
    if args.plot:
        Path(args.plot).write_bytes(png_histogram(result.calibration))
        print(f"\nHistogram written to {args.plot}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="what each threshold setting would flag on an export of past tickets",
        description="Screen an export of past tickets (JSON lines: id, text, created_at?, locale?) "
                    "locally and compare thresholds. Ticket texts are not printed unless "
                    "--show-text.")
    parser.add_argument("export", help="JSON-lines export of past tickets")
    parser.add_argument("--tenant", help="start from this tenant's thresholds (default: defaults)")
    parser.add_argument("--tenants", dest="tenants_file", type=Path, help="tenants TOML file")
    parser.add_argument("--days", type=int, help="days the export spans, if it has no created_at")
    parser.add_argument("--plot", type=Path, help="also write the score histogram as a PNG")
    parser.add_argument("--show-text", action="store_true",
                        help="print the texts of the flagged tickets (they stay local otherwise)")
    parser.add_argument("--progress", action="store_true",
                        help="show the progress bar even when stderr is not a terminal")
    parser.set_defaults(func=cmd_calibrate)
