"""E-mail over SMTP: the `REFCHECK_SMTP_URL` forms and one message sent with `smtplib`.

    smtp://host:25                         plain (a relay on the same host or network)
    smtp+starttls://user:pass@host:587     STARTTLS, then AUTH (submission)
    smtps://user:pass@host:465             TLS from the first byte, then AUTH

User name and password are percent-decoded (`p%40ss` is `p@ss`). TLS certificates are verified
against the system's trust store. Nothing here ever puts the URL into a message or a log line:
it holds the password.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal
from urllib.parse import unquote, urlsplit

from server.notifications.errors import SendFailed
from server.registry.addresses import AddressRefused, check_email

Security = Literal["none", "starttls", "tls"]
_SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpConfig:
    """The SMTP server of `url`; `ValueError` naming what is wrong (never echoing the URL)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError("REFCHECK_SMTP_URL is not a valid URL") from exc
    if parts.scheme not in _SCHEMES:
        raise ValueError("REFCHECK_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise ValueError("REFCHECK_SMTP_URL names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("REFCHECK_SMTP_URL takes no path, query or fragment")
    security, default_port = _SCHEMES[parts.scheme]
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise ValueError("REFCHECK_SMTP_URL needs both a user name and a password, or neither")
    return SmtpConfig(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=username,
        password=password,
    )


def mail_from_address(mail_from: str) -> str:
    """The bare address of `REFCHECK_MAIL_FROM` (which may be `Name <address>`)."""
    if "\r" in mail_from or "\n" in mail_from:
        raise ValueError("REFCHECK_MAIL_FROM cannot contain a line break")
    _, address = parseaddr(mail_from)
    try:
        return check_email(address)
    except AddressRefused as exc:
        raise ValueError(f"REFCHECK_MAIL_FROM: {exc}") from exc


def check_mail_settings(url: str, mail_from: str, *, environment: str) -> None:
    """Refuse a half or unsafe mail configuration at start-up rather than at the first
    notification: both settings or neither, a URL of a known form, a From address, and in
    production no password sent over a connection without TLS (anyone on the path would read
    it)."""
    if not url or not mail_from:
        raise ValueError("set REFCHECK_SMTP_URL and REFCHECK_MAIL_FROM together, or neither")
    config = parse_smtp_url(url)
    mail_from_address(mail_from)
    if environment == "production" and config.security == "none" and config.username:
        raise ValueError(
            "REFCHECK_SMTP_URL would send the SMTP password without TLS: use smtp+starttls:// "
            "or smtps:// in production"
        )


def _refused_for_good(code: int) -> bool:
    return 500 <= code < 600


def send_message(config: SmtpConfig, message: EmailMessage, *, timeout: float) -> None:
    """Send one message; `SendFailed` (permanent when the server refused the recipient or the
    message with a 5xx reply) on any failure."""
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if config.security == "tls":
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=timeout)
        with client:
            if config.security == "starttls":
                client.starttls(context=context)
            if config.username is not None and config.password is not None:
                client.login(config.username, config.password)
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(_refused_for_good(c) for c in codes)
        raise SendFailed(
            f"smtp {codes[0] if codes else '?'} recipient refused", permanent=permanent
        ) from None
    except smtplib.SMTPDataError as exc:
        raise SendFailed(
            f"smtp {exc.smtp_code} message refused", permanent=_refused_for_good(exc.smtp_code)
        ) from None
    except smtplib.SMTPResponseException as exc:
        # Sender refused, authentication failed, ...: the server's configuration or ours;
        # retried, so that fixing it lets the message through.
        raise SendFailed(f"smtp {exc.smtp_code} {type(exc).__name__}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(type(exc).__name__) from None
