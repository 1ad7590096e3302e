"""The console's web application: Starlette routes rendering Jinja2 pages, over one SDK
`Client` unlocked from the member's credentials file.

Security (issue 19):

* Loopback only unless `--allow-remote` with TLS (`client_sdk.console.command`); the Host
  header must name this console (DNS rebinding).
* Locked until unlocked: with the credentials file's passphrase when it has one, else with the
  access code printed in the terminal at start-up. After `idle_seconds` without a request the
  client is closed, the check results in memory dropped, and the next page asks again.
* Every POST carries the CSRF token of the `rc_csrf` cookie (SameSite=Strict) in its form, and a
  cross-origin `Origin` is refused. A strict Content-Security-Policy allows no inline script and
  nothing from another origin.
* No identifier in a URL: people are typed into POST forms, check results are kept in memory
  under a random token, and the access log is off.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from client_sdk._client import Client
from client_sdk.console import i18n
from client_sdk.console.choices import choice_label
from client_sdk.console.i18n import gettext_ as _
from client_sdk.console.labels import LabelStore, labels_file
from client_sdk.console.vault import ConsoleSettings, Vault
from client_sdk.credentials import Credentials
from client_sdk.errors import (
    CredentialsError,
    ProtocolViolation,
    RefcheckError,
    TransportError,
)

__all__ = ["ConsoleSettings", "create_app"]

P = ParamSpec("P")
T = TypeVar("T")

HERE = Path(__file__).parent
CSRF_COOKIE = "rc_csrf"
SESSION_COOKIE = "rc_session"
LANG_COOKIE = "rc_lang"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PERSON_FIELDS = (
    "full_name",
    "date_of_birth",
    "nationality",
    "national_id",
    "passport",
    "passport_country",
    "email",
    "phone",
)
MOU_WARNING_DAYS = 30


class SecurityHeaders:
    """Pure ASGI: the headers every answer carries, and the language of the request."""

    def __init__(self, app: ASGIApp, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if self.secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


# -- the application -------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext_, i18n.ngettext_, newstyle=True
    )
    env.filters["date"] = i18n.fmt_date
    env.filters["datetime"] = i18n.fmt_datetime
    env.filters["month"] = i18n.fmt_month
    env.filters["label"] = choice_label
    return env


def create_app(settings: ConsoleSettings) -> Starlette:
    """The console for one credentials file."""
    vault = Vault(settings)
    env = _env()

    # -- helpers -------------------------------------------------------------------------

    def language(request: Request) -> str:
        return i18n.negotiate(
            request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
        )

    def csrf_of(request: Request) -> tuple[str, bool]:
        token = request.cookies.get(CSRF_COOKIE)
        if token and len(token) >= 32:
            return token, False
        return secrets.token_urlsafe(32), True

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        token, fresh = csrf_of(request)
        creds = vault.credentials
        roles = set(creds.roles) if creds else set()
        body = env.get_template(template).render(
            request=request,
            csrf=token,
            lang=i18n.current_language(),
            languages=i18n.LANGUAGES,
            me=creds,
            roles=roles,
            idle_seconds=settings.idle_seconds,
            unlocked=creds is not None,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        if fresh:
            set_cookie(response, CSRF_COOKIE, token)
        return response

    def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )

    async def checked_form(request: Request) -> FormData | None:
        """The POSTed form when its CSRF token is the cookie's and its origin ours."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != own:
                return None
        form = await request.form()
        sent = form.get("csrf")
        cookie = request.cookies.get(CSRF_COOKIE)
        if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent, cookie):
            return None
        return form

    def refused(request: Request) -> HTMLResponse:
        return render(
            request,
            "message.html",
            status=403,
            title=_("Form refused"),
            message=_(
                "This form was not sent from this console's own page (its security token is "
                "missing or wrong). Open the page again and resend it."
            ),
        )

    def page(
        *roles: str, post: bool = False
    ) -> Callable[
        [Callable[[Request, Client, FormData | None], Awaitable[Response]]],
        Callable[[Request], Awaitable[Response]],
    ]:
        """A page behind the lock, for the given roles (any role when none)."""

        def wrap(
            fn: Callable[[Request, Client, FormData | None], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                i18n.use_language(language(request))
                if not vault.active(request.cookies.get(SESSION_COOKIE)):
                    if request.method == "POST":
                        return RedirectResponse("/unlock?locked=1", status_code=303)
                    return RedirectResponse("/unlock", status_code=303)
                client = vault.client
                assert client is not None and vault.credentials is not None
                if roles and not set(roles) & set(vault.credentials.roles):
                    return render(
                        request,
                        "message.html",
                        status=403,
                        title=_("Not for your role"),
                        message=_("This page is for another role than yours."),
                    )
                form = None
                if request.method == "POST":
                    form = await checked_form(request)
                    if form is None:
                        return refused(request)
                try:
                    return await fn(request, client, form)
                except ProtocolViolation as exc:
                    return render(
                        request,
                        "message.html",
                        status=502,
                        title=_("Security check failed"),
                        message=_(
                            "The network server's answer failed a security check, so nothing "
                            "was done. Tell the network secretariat."
                        ),
                        detail=str(exc),
                    )
                except TransportError:
                    return render(
                        request,
                        "message.html",
                        status=503,
                        title=_("The network server cannot be reached"),
                        message=_("Check the internet connection and try again. Nothing was lost."),
                    )
                except RefcheckError as exc:
                    return render(
                        request,
                        "message.html",
                        status=400,
                        title=_("Refused"),
                        message=_("The request was refused."),
                        detail=str(exc),
                    )
                finally:
                    if form is not None:
                        await form.close()

            endpoint.__name__ = fn.__name__
            return endpoint

        return wrap

    def text(form: FormData | None, name: str) -> str:
        value = form.get(name) if form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def person_of(form: FormData | None) -> dict[str, str]:
        return {k: text(form, k) for k in PERSON_FIELDS if text(form, k)}

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def run() -> T:
            with vault.lock:
                return fn(*args, **kwargs)

        return await run_in_threadpool(run)

    # -- unlock, lock, language ----------------------------------------------------------

    async def unlock(request: Request) -> Response:
        i18n.use_language(language(request))
        error = None
        if request.method == "POST":
            form = await checked_form(request)
            if form is None:
                return refused(request)
            secret = form.get("secret")
            try:
                session = await run_in_threadpool(
                    vault.unlock, secret if isinstance(secret, str) else ""
                )
            except CredentialsError:
                vault.failures += 1
                await anyio.sleep(min(3, vault.failures))  # slows guessing
                error = _("Wrong passphrase.") if vault.sealed else _("Wrong access code.")
            else:
                response = RedirectResponse("/", status_code=303)
                set_cookie(response, SESSION_COOKIE, session)
                return response
        return render(
            request,
            "unlock.html",
            status=401 if error else 200,
            error=error,
            sealed=vault.sealed,
            locked=request.query_params.get("locked") == "1",
            principal=vault.document.get("principal_name") or "",
            org=vault.document.get("org_short_name") or "",
        )

    async def lock(request: Request) -> Response:
        form = await checked_form(request)
        if form is None:
            i18n.use_language(language(request))
            return refused(request)
        vault.lock_now()
        response = RedirectResponse("/unlock?locked=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def set_language(request: Request) -> Response:
        form = await checked_form(request)
        if form is None:
            i18n.use_language(language(request))
            return refused(request)
        chosen = form.get("lang")
        back = form.get("back")
        target = back if isinstance(back, str) and back.startswith("/") else "/"
        if target.startswith("//"):
            target = "/"
        response = RedirectResponse(target, status_code=303)
        if isinstance(chosen, str) and chosen in i18n.LANGUAGES:
            set_cookie(response, LANG_COOKIE, chosen, max_age=365 * 86400)
        return response

    @page()
    async def home(request: Request, client: Client, form: FormData | None) -> Response:
        return render(request, "home.html")

    # -- focal point -----------------------------------------------------------------------

    from client_sdk.console import pages

    routes = [
        Route("/", home),
        Route("/unlock", unlock, methods=["GET", "POST"]),
        Route("/lock", lock, methods=["POST"]),
        Route("/language", set_language, methods=["POST"]),
        *pages.routes(
            pages.Kit(
                page=page,
                render=render,
                call=call,
                text=text,
                person_of=person_of,
                vault=vault,
                labels=lambda: LabelStore(labels_file(settings.credentials_path), _creds(vault)),
            )
        ),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    hosts = ["127.0.0.1", "localhost", *settings.hosts]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, secure=settings.secure_cookies),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        ],
    )
    app.state.vault = vault
    return app


def _creds(vault: Vault) -> Credentials:
    if vault.credentials is None:
        raise CredentialsError("the console is locked")
    return vault.credentials
