"""`refcheck console`: start the local web console for one credentials file."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli._common import ENV_CA_FILE, ENV_CREDENTIALS, ENV_PIN_FILE

__all__ = ["console"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def console(
    credentials: Annotated[
        Path,
        typer.Option(
            "--credentials",
            envvar=ENV_CREDENTIALS,
            help="Your credentials file (from `refcheck login` or the secretariat).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8700,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Listen on an address other than this computer's own (needs --tls-cert).",
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM), required with --allow-remote.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    idle_minutes: Annotated[
        int, typer.Option(help="Lock after this many minutes without use.", min=1, max=240)
    ] = 15,
    base_url: Annotated[
        str | None, typer.Option(help="Server URL (default: the credentials').")
    ] = None,
    pin_file: Annotated[Path | None, typer.Option(envvar=ENV_PIN_FILE, help="Pin file.")] = None,
    ca_file: Annotated[
        Path | None, typer.Option(envvar=ENV_CA_FILE, help="The network's CA bundle (PEM).")
    ] = None,
) -> None:
    """Start the web console on this computer and open it in your browser (Bahasa Indonesia
    or English). Needs `pip install 'refcheck\\[console]'`."""
    try:
        import uvicorn

        from client_sdk.console.app import ConsoleSettings, create_app
    except ImportError as exc:
        typer.echo(
            "The console is not installed. Install it with:  pip install 'refcheck[console]'\n"
            f"(missing: {exc.name})",
            err=True,
        )
        raise typer.Exit(2) from None
    from client_sdk.errors import CredentialsError

    if not _loopback(host) and not allow_remote:
        typer.echo(
            f"refusing to listen on {host}: the console serves this computer only. "
            "Pass --allow-remote with --tls-cert and --tls-key to serve another address.",
            err=True,
        )
        raise typer.Exit(2)
    if not _loopback(host) and (tls_cert is None or tls_key is None):
        typer.echo("--allow-remote needs --tls-cert and --tls-key (HTTPS only).", err=True)
        raise typer.Exit(2)
    secure = tls_cert is not None and tls_key is not None
    settings = ConsoleSettings(
        credentials_path=credentials,
        base_url=base_url,
        pin_file=pin_file,
        ca_file=ca_file,
        idle_seconds=idle_minutes * 60,
        hosts=() if _loopback(host) else (host,),
        secure_cookies=secure,
    )
    try:
        app = create_app(settings)
    except CredentialsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(5) from None
    scheme = "https" if secure else "http"
    shown = "127.0.0.1" if host in ("127.0.0.1", "0.0.0.0") else host
    typer.echo(f"refcheck console: open {scheme}://{shown}:{port}/ in your browser")
    if not app.state.vault.sealed:
        typer.echo(f"Access code to unlock / Kode akses: {settings.access_code}")
    typer.echo("Stop with Ctrl+C. / Hentikan dengan Ctrl+C.")
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
