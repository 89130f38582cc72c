"""Logging: every record, ours and the libraries' (uvicorn, SQLAlchemy), one JSON object a
line on stderr, with its `extra` fields and the id of the request it was made in (bound by
core/middleware.RequestContext); `CRM_LOG_FORMAT=console` for people reading a terminal. The
code logs through the standard library; structlog only formats."""

import logging
import sys

import structlog

from crm_api.settings import Settings


def log_formatter(log_format: str = "json") -> logging.Formatter:
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(),
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(settings.log_format))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # RequestContext writes the access log, with the operation, duration and request id.
    logging.getLogger("uvicorn.access").disabled = True
