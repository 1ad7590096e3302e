"""`refcheck console`: a local web console for focal points, HR officers, the secretariat and
auditors, run on the member's own machine (issue 19).

Every identifier is blinded, and every sealed answer opened, here, by the client SDK: the pages
are server-rendered by this process on 127.0.0.1, no JavaScript does cryptography, and nothing
but the SDK's own calls reaches the network server. Installed with `pip install refcheck[console]`.

`create_app(settings)` builds the Starlette application; `client_sdk.console.command` is the
`refcheck console` command.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConsoleSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazily: `refcheck` imports `client_sdk.console.command` for its help text, and the base
    # install has no Starlette.
    if name in __all__:
        from client_sdk.console import app

        return getattr(app, name)
    raise AttributeError(name)
