"""structlog setup and the redaction processor.

Log lines carry tenant, ticket id, delivery id, job id, tier, rule ids and timings. The redactor is
the last line of defence: it drops any field whose name says it holds ticket content, masks every
registered secret and every e-mail address in the remaining values, and reduces exceptions to
their type (an exception message from a library could quote a request body).
"""

from __future__ import annotations

import logging
import re
import sys
import weakref
from typing import Any, Iterable, MutableMapping

import structlog

# Field names that may hold ticket content: dropped whatever their value.
CONTENT_KEYS = frozenset({
    "text", "body", "raw", "payload", "description", "description_text", "subject", "comment",
    "comments", "html_body", "plain_body", "note", "note_html", "reply", "content", "message_text",
    "ticket_text", "data",
})
REDACTED = "[redacted]"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class Redactor:
    """structlog processor; `add_secrets` registers values to mask (tenant secrets, tokens)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add_secrets(self, values: Iterable[str]) -> None:
        # Very short values would mask ordinary words; secrets are long in practice.
        self._secrets.update(v for v in values if v and len(v) >= 6)
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            if self._pattern is not None:
                value = self._pattern.sub(REDACTED, value)
            return _EMAIL.sub("[email]", value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v) for v in value)
        if isinstance(value, dict):
            return {k: (REDACTED if k in CONTENT_KEYS else self._clean(v)) for k, v in value.items()}
        return value

    def __call__(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        exc_info = event_dict.pop("exc_info", None)
        exception = event_dict.pop("exception", None)
        if exc_info or exception:
            error = exc_info[1] if isinstance(exc_info, tuple) else (
                sys.exc_info()[1] if exc_info is True else exc_info)
            if isinstance(error, BaseException):
                event_dict["error_type"] = type(error).__name__
                # Our own errors carry a reason we wrote; anything else only its type.
                reason = getattr(error, "reason", None)
                if isinstance(reason, str):
                    event_dict["error_reason"] = reason
        for key in list(event_dict):
            if key in CONTENT_KEYS:
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self._clean(event_dict[key])
        return event_dict


redactor = Redactor()


def configure(*, level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog (and route the stdlib loggers through the same redaction)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=False) if fmt == "console"
                     else structlog.processors.JSONRenderer(sort_keys=True))
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Library loggers (aiohttp, httpx, asyncio) go through the same redaction. httpx logs full
    # URLs at INFO (a Freshdesk URL token would land there), so it is held at WARNING.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer, foreign_pre_chain=[structlog.processors.add_log_level,
                                               structlog.processors.TimeStamper(fmt="iso", utc=True),
                                               _drop_stdlib_args, redactor]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("httpx", "httpcore", "aiohttp.access", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # Last, so a logger rebuilt meanwhile cannot keep the old configuration.
    for logger in list(_loggers):
        logger._forget()


def _drop_stdlib_args(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]
                      ) -> MutableMapping[str, Any]:
    # A stdlib record's rendered message can embed arbitrary data; keep it but mask it above.
    event_dict.pop("positional_args", None)
    return event_dict


# Every module logger, so `configure` can make each rebuild on its next line.
_loggers: "weakref.WeakSet[_Logger]" = weakref.WeakSet()


class _Logger:
    """A module's logger. structlog's lazy proxy builds a bound logger on every call (a few µs a
    line, even for a line the level filters out, on every request); this one builds it once per
    `configure` call and keeps its methods as plain attributes, so `log.info` is one lookup."""

    def __init__(self, name: str) -> None:
        self._name = name
        _loggers.add(self)

    def __getattr__(self, attribute: str) -> Any:
        # Only reached for a method not cached yet (first use, or after `configure`).
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        bound = self.__dict__.get("_bound")
        if bound is None:
            bound = self.__dict__["_bound"] = structlog.get_logger(self._name).bind()
        method = getattr(bound, attribute)
        self.__dict__[attribute] = method
        return method

    def _forget(self) -> None:
        """Drop the cached bound logger and methods (the configuration changed)."""
        name = self._name
        self.__dict__.clear()
        self._name = name


def get_logger(name: str = "careroute") -> Any:
    return _Logger(name)


bind = structlog.contextvars.bind_contextvars
unbind = structlog.contextvars.unbind_contextvars
bound = structlog.contextvars.bound_contextvars
