"""What every `refcheck` command shares: exit codes, the global options, building a client,
reading a person, printing, and turning SDK exceptions into a message and an exit code.

Messages printed here never contain an identifier: they are built from exception messages that
name fields, never values, and from server `detail`s that are identifier-free by contract.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from client_sdk._client import Client
from client_sdk.cli.i18n import _
from client_sdk.credentials import Credentials
from client_sdk.errors import (
    ApiError,
    CredentialsError,
    InvalidInput,
    OrgKeyChanged,
    ProtocolViolation,
    RefcheckError,
    ServerError,
    TransportError,
)
from client_sdk.secretfile import load_json_secret
from protocol.identity import PERSON_FIELDS

P = ParamSpec("P")
R = TypeVar("R")

ENV_CREDENTIALS = "REFCHECK_CREDENTIALS"
ENV_BASE_URL = "REFCHECK_BASE_URL"
ENV_PASSPHRASE = "REFCHECK_PASSPHRASE"
ENV_PIN_FILE = "REFCHECK_PIN_FILE"
ENV_CA_FILE = "REFCHECK_CA_FILE"
ENV_ALLOW_INSECURE_HTTP = "REFCHECK_ALLOW_INSECURE_HTTP"


class ExitCode(IntEnum):
    """Exit codes of `refcheck` (documented in client_sdk/README.md).

    0 means the command did what was asked and, for `check`/`rescreen`, found no match; a match
    is not an error but scripts must be able to branch on it, hence codes of its own.
    """

    OK = 0
    ERROR = 1  # unexpected failure (a bug): please report it
    USAGE = 2  # bad arguments or input file (also click's own usage errors)
    REFUSED = 3  # the server refused (4xx problem: permission, consent, policy, quota, ...)
    UNAVAILABLE = 4  # network error or server failure (5xx) after retries
    CREDENTIALS = 5  # credentials/keystore/pin file missing, unreadable, or wrong passphrase
    SECURITY = 6  # proof invalid, OPRF key changed, answer off-contract: do not trust the server
    MATCH = 10  # check/rescreen: at least one match (strong or exact key)
    POSSIBLE_MATCH = 11  # check/rescreen: only possible matches (variant name keys)
    PARTIAL = 12  # rescreen: no match, but some rows were skipped or refused


@dataclass
class State:
    """Global options, and the client built from them on first use."""

    credentials_path: Path | None = None
    base_url: str | None = None
    pin_file: Path | None = None
    #: The network's CA bundle (PEM), when its certificate is not from a public CA.
    ca_file: Path | None = None
    #: Allow plain http:// to a server that is not this machine (test networks only).
    allow_insecure_http: bool = False
    json_output: bool = False
    console: Console = field(default_factory=Console)
    errors: Console = field(default_factory=lambda: Console(stderr=True))
    _client: Client | None = None

    def credentials(self) -> Credentials:
        if self.credentials_path is None:
            raise CredentialsError(
                _("no credentials: pass --credentials FILE or set {variable}").format(
                    variable=ENV_CREDENTIALS
                )
            )
        return load_credentials(self.credentials_path)

    def pins(self) -> Path | None:
        return self.pin_file or default_pin_file(self.credentials_path)

    def client(self) -> Client:
        if self._client is None:
            creds = self.credentials()
            pin_file = self.pins()
            self._client = Client(
                creds,
                base_url=self.base_url,
                pin_file=pin_file,
                filter_file=beside(pin_file, ".filter"),
                ca_file=self.ca_file,
                allow_insecure_http=self.allow_insecure_http,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def default_pin_file(credentials_path: Path | None) -> Path | None:
    """Pins live beside the credentials file, so each CLI run checks the key the previous
    runs saw (a pin that lasted one process would protect nothing)."""
    if credentials_path is None:
        return None
    return credentials_path.with_name(credentials_path.stem + ".pins.json")


def beside(pin_file: Path | None, suffix: str) -> Path | None:
    """A file kept beside the pin file: `org-b-hr.pins.json` → `org-b-hr<suffix>` (the
    registry filter cache, `.filter`; a focal point's registrations, `.cases.json`)."""
    if pin_file is None:
        return None
    stem = pin_file.name.removesuffix(".json").removesuffix(".pins")
    return pin_file.with_name(stem + suffix)


def passphrase(prompt: str | None = None, *, confirm: bool = False) -> str:
    from_env = os.environ.get(ENV_PASSPHRASE)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CredentialsError(
            _("a passphrase is needed: set {variable} or run in a terminal").format(
                variable=ENV_PASSPHRASE
            )
        )
    value: str = typer.prompt(
        prompt or _("Passphrase"),
        hide_input=True,
        confirmation_prompt=_("Repeat for confirmation") if confirm else False,
    )
    return value


def load_credentials(path: Path) -> Credentials:
    document = load_json_secret(path)
    secret = passphrase() if document.get("sealed_secrets") is not None else None
    return Credentials.from_dict(document, passphrase=secret)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        obj = State()
        ctx.find_root().obj = obj
    return obj


def fail(st: State, code: ExitCode, message: str, **extra: Any) -> NoReturn:
    if st.json_output:
        st.console.print_json(json.dumps({"error": {"message": message, **extra}}))
    else:
        st.errors.print(
            _("[bold red]error:[/] {message}").format(message=message), highlight=False, markup=True
        )
    raise typer.Exit(int(code))


def exit_code_for(exc: RefcheckError) -> ExitCode:
    """The documented exit code for an SDK exception (client_sdk/README.md, Exit codes)."""
    if isinstance(exc, ProtocolViolation):
        return ExitCode.SECURITY
    if isinstance(exc, CredentialsError):
        return ExitCode.CREDENTIALS
    if isinstance(exc, InvalidInput):
        return ExitCode.USAGE
    if isinstance(exc, TransportError | ServerError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, ApiError):
        return ExitCode.REFUSED
    return ExitCode.ERROR


def describe(exc: RefcheckError) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": type(exc).__name__}
    if isinstance(exc, OrgKeyChanged):
        # What a person compares with the organisation before `refcheck keys trust`.
        out.update(
            org=exc.org,
            org_id=exc.org_id,
            pinned_fingerprint=exc.pinned_fingerprint,
            directory_fingerprint=exc.directory_fingerprint,
        )
    if isinstance(exc, ApiError):
        out.update(status=exc.status, type=exc.type)
        for key in ("rule", "retry_after_seconds", "index"):
            if key in exc.extra:
                out[key] = exc.extra[key]
    return out


@contextmanager
def reporting(st: State) -> Iterator[None]:
    """Turn SDK exceptions into a one-line message and the documented exit code."""
    try:
        yield
    except RefcheckError as exc:
        prefix = (
            _("security check failed, not continuing: ")
            if isinstance(exc, ProtocolViolation)
            else ""
        )
        message = unreachable(st, exc) if isinstance(exc, TransportError) else str(exc)
        fail(st, exit_code_for(exc), prefix + message, **describe(exc))


def unreachable(st: State, exc: TransportError) -> str:
    """A connection failure as a person can act on it: which server, and what to check."""
    url = st._client.base_url if st._client is not None else st.base_url
    where = _("the server at {url}").format(url=url) if url else _("the server")
    cause = f"{type(exc.__cause__).__name__}" if exc.__cause__ is not None else str(exc)
    tls = "certificate" in str(exc.__cause__).lower() or "ssl" in cause.lower()
    hint = (
        _(
            "the server's certificate was not accepted: pass the network's CA bundle with "
            "--ca-file (or REFCHECK_CA_FILE)"
        )
        if tls
        else _(
            "check the address (--base-url, or base_url in the credentials file), that the "
            "server is running, and this computer's internet connection, VPN or proxy"
        )
    )
    return _("cannot reach {where} ({cause}; {detail}): {hint}").format(
        where=where, cause=cause, detail=exc, hint=hint
    )


def handled(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for commands: their first argument is the typer context."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        # Typer hands the context over by parameter name; its class may be click's own.
        ctx = kwargs.get("ctx")
        if not hasattr(ctx, "find_root"):
            raise TypeError(f"command {fn.__name__} needs a `ctx: typer.Context` parameter")
        st = state(ctx)  # type: ignore[arg-type]
        try:
            with reporting(st):
                return fn(*args, **kwargs)
        finally:
            st.close()

    return wrapper


def emit(st: State, data: Any, human: Callable[[], None]) -> None:
    """Print `data` as JSON with --json, else call `human` to print for people."""
    if st.json_output:
        st.console.print_json(json.dumps(data, default=str))
    else:
        human()


# -- person records --------------------------------------------------------------------------


def read_person(path: str | None, flags: dict[str, str | None]) -> dict[str, Any]:
    """A person from a JSON file (`-` for stdin) or from flags, not both.

    A file (or stdin) is preferred: identifiers typed as flags end up in shell history and
    are visible to other users in the process list.
    """
    given = {k: v for k, v in flags.items() if v}
    if path is not None and given:
        raise InvalidInput(_("give the person either as --person FILE or as flags, not both"))
    if path is None:
        if not given:
            raise InvalidInput(_("no person given: use --person FILE (or -) or --full-name/--dob"))
        return given
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(_("the person file is not readable JSON")) from None
    if not isinstance(data, dict):
        raise InvalidInput(_("the person file must hold one JSON object"))
    unknown = sorted(set(data) - set(PERSON_FIELDS))
    if unknown:
        raise InvalidInput(_("unknown person fields: {fields}").format(fields=", ".join(unknown)))
    return {k: v for k, v in data.items() if v not in (None, "")}
