# SPDX-License-Identifier: Apache-2.0
"""The parsers ``logs.patterns`` tries by default, in order (JSON, grok pattern names, LOGFMT).

A module of its own, without pydantic, so the offline ``logs parse`` starts without the config
models."""

from __future__ import annotations

DEFAULT_PATTERNS: tuple[str, ...] = (
    "JSON",
    "COMBINEDAPACHELOG",
    "NGINXACCESS",
    "COMMONAPACHELOG",
    "BUSYBOXHTTPD",
    "AUTHLINE",
    "SYSLOGLINE",
    "SYSLOG5424LINE",
    "HTTPD_ERRORLOG",
    "NGINXERROR",
    "LOGFMT",
)
