"""Ticket text as it arrives: HTML to plain text, and quoted e-mail lines blanked out.

Both keep a map from every character of the result back to the original text, so a matched
phrase can be shown to the agent exactly as the customer wrote it.
"""

from __future__ import annotations

import html
import re

from plugin.screening.compiled import compile_source

_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*\b[^<>]*|/[a-zA-Z][a-zA-Z0-9]*\s*)>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});")
_HTML_TOKEN = re.compile(
    r"<!--.*?(?:-->|$)"
    r"|<(/?)([a-zA-Z][a-zA-Z0-9]*)\b([^<>]*)>"
    r"|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]{2,8});",
    re.DOTALL,
)
# Elements whose content is never the customer's new words.
_SKIP_CONTENT = frozenset({"script", "style", "head", "title", "blockquote", "template"})
# Containers that mail clients use for the quoted thread: everything from them on is history.
_QUOTED_THREAD = re.compile(
    r"""(?:class|id)\s*=\s*["']?[^"'>]*(?:gmail_quote|gmail_extra|divRplyFwdMsg|moz-cite-prefix|"""
    r"""yahoo_quoted|OutlookMessageHeader|appendonsend|mail_quote|protonmail_quote|zmail_extra|"""
    r"""freshdesk_quote|zendesk_quote|quoted-text)""",
    re.IGNORECASE,
)
_BLOCK_TAGS = frozenset({
    "br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "section", "article", "header", "footer", "pre", "dd", "dt",
})
# compile_source: `re` finds no start set here (a line start) and tries every position; see
# compiled.regex_code.
_QUOTED_LINE = compile_source(r"(?m)^[ \t]*(?:>|&gt;).*$")


def looks_like_html(text: str) -> bool:
    return ("<" in text or "&" in text) and _LOOKS_LIKE_HTML.search(text) is not None


def html_to_text(raw: str) -> tuple[str, list[int]]:
    """Visible text of an HTML body, and per character its index in `raw` (+ a final entry)."""
    pieces: list[str] = []
    origin: list[int] = []
    skip_depth = 0
    skip_tag = ""
    last = 0
    end_of_text = len(raw)
    for token in _HTML_TOKEN.finditer(raw):
        start, end = token.span()
        if skip_depth == 0 and start > last:
            pieces.append(raw[last:start])
            origin.extend(range(last, start))
        last = end
        text = token.group()
        if text.startswith("<!--"):
            continue
        if text.startswith("&"):
            if skip_depth == 0:
                decoded = html.unescape(text)
                pieces.append(decoded)
                origin.extend([start] * len(decoded))
            continue
        closing, name = token.group(1), token.group(2).lower()
        if skip_depth:
            if name == skip_tag:
                skip_depth += -1 if closing else 1
            continue
        if not closing and _QUOTED_THREAD.search(token.group(3) or ""):
            end_of_text = start
            break
        if not closing and name in _SKIP_CONTENT:
            skip_depth, skip_tag = 1, name
            continue
        if name in _BLOCK_TAGS:
            pieces.append("\n")
            origin.append(start)
    else:
        if skip_depth == 0 and last < len(raw):
            pieces.append(raw[last:])
            origin.extend(range(last, len(raw)))
    origin.append(end_of_text)
    return "".join(pieces), origin


def blank_quoted_lines(text: str) -> str:
    """Replace e-mail quote lines ("> …") with spaces: same length, so offsets stay valid."""
    if ">" not in text:
        return text
    return _QUOTED_LINE.sub(lambda m: " " * len(m.group()), text)
