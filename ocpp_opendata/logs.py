"""Structured logging: one line per event, as text for people or JSON for log collectors.

Log calls pass facts as `extra={"fields": {...}}`; payloads and idTags are never logged.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        when = self.formatTime(record, "%H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if tail:
            line += "  " + tail
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs every failed handshake at INFO with a traceback; our own refusal log says why.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # Dagster's SQLite storage announces each schema migration check at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def fields(**values: object) -> dict[str, dict[str, object]]:
    """Shorthand for `logger.info("...", extra=fields(a=1))`."""
    return {"fields": values}
