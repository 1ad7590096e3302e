"""`refcheck audit`: the auditor reads the server's audit trail and verifies it against the
network's transparency log (docs/api.md, "Audit" and "Transparency log").

`audit verify` goes further than `transparency verify`: besides the signed tree head and its
consistency with the last one this machine saw, it downloads every logged entry, rebuilds the
Merkle tree and compares its root with the signed one, then checks that each entry of the audit
trail that the log has sealed is the very entry at its leaf.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import beside, emit, handled, state
from client_sdk.cli._http import call_json
from client_sdk.cli.i18n import _
from client_sdk.errors import InvalidResponse, LogInconsistent
from client_sdk.transparency import TreeHead, TreeHeadStore, verify_log
from protocol import merkle

app = typer.Typer(help="Auditors: read the audit trail and verify it against the log.")

#: Page sizes the server allows (`GET /v1/audit`, `GET /v1/transparency/entries`).
PAGE = 1000


def audit_pages(
    client: Client, after_seq: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Audit entries after `after_seq`, following `next_after` (up to `limit` entries)."""
    items: list[dict[str, Any]] = []
    after: int | None = after_seq
    while after is not None and (limit is None or len(items) < limit):
        size = PAGE if limit is None else min(PAGE, limit - len(items))
        page = call_json(
            client, "GET", "/v1/audit", params={"after_seq": str(after), "limit": str(size)}
        )
        items.extend(page["items"])
        after = page.get("next_after")
    return items


@app.command("list")
@handled
def list_entries(
    ctx: typer.Context,
    after: Annotated[int, typer.Option(help="Show entries after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 100,
    action: Annotated[
        str | None,
        typer.Option(help="Only actions starting with this, e.g. case. or disclosure.answer."),
    ] = None,
) -> None:
    """Entries of the audit trail, oldest first: when, who (ids), what and on which object."""
    st = state(ctx)
    items = audit_pages(st.client(), after, limit)
    if action:
        items = [e for e in items if str(e.get("action", "")).startswith(action)]
    last = items[-1]["seq"] if items else None

    def human() -> None:
        table = Table(_("seq"), _("at (UTC)"), _("action"), _("object"), _("actor org"), _("leaf"))
        for e in items:
            table.add_row(
                str(e.get("seq")),
                str(e.get("at", ""))[:19],
                str(e.get("action")),
                f"{e.get('object_type') or '-'} {e.get('object_id') or ''}".strip(),
                str(e.get("actor_org_id") or "-"),
                "-" if e.get("leaf_index") is None else str(e.get("leaf_index")),
            )
        st.console.print(table)
        if last is not None:
            st.console.print(
                _("Next page: refcheck audit list --after {last}").format(last=last),
                highlight=False,
            )

    emit(st, {"items": items, "last_seq": last}, human)


def logged_entries(client: Client, head: TreeHead) -> list[bytes]:
    """Every entry of the log up to the verified head, in leaf order."""
    entries: list[bytes] = []
    for start in range(0, head.size, PAGE):
        end = min(start + PAGE, head.size)
        page = call_json(
            client,
            "GET",
            "/v1/transparency/entries",
            params={"start": str(start), "end": str(end)},
        )
        for item in page.get("entries", []):
            if int(item["index"]) != len(entries):
                raise InvalidResponse(_("the log's entries are not served in order"))
            entries.append(str(item["entry"]).encode("ascii"))
    if len(entries) != head.size:
        raise InvalidResponse(_("the log served fewer entries than its tree head counts"))
    return entries


#: Fields of an audit entry that its logged leaf must repeat exactly.
SAME = ("seq", "actor_principal_id", "actor_org_id", "action", "object_type", "object_id")


def differs(trail: dict[str, Any], logged: dict[str, Any]) -> bool:
    if any(trail.get(k) != logged.get(k) for k in SAME):
        return True
    if trail.get("details") != logged.get("details"):
        return True
    try:
        return datetime.fromisoformat(str(trail["at"])) != datetime.fromisoformat(str(logged["at"]))
    except (KeyError, ValueError):
        return True


@app.command("verify")
@handled
def verify(
    ctx: typer.Context,
    tree_head_file: Annotated[
        str | None,
        typer.Option(
            "--tree-head-file",
            help="Where the newest verified tree head is kept (default: beside the pin file, "
            "shared with `refcheck transparency verify`).",
        ),
    ] = None,
) -> None:
    """Verify the audit trail: the signed tree head, its consistency with the last one seen,
    the whole log against the signed root, and every sealed trail entry against its leaf.

    Exit 6 (security) when anything differs: alert the network secretariat and keep the tree
    head file as evidence.
    """
    st = state(ctx)
    client = st.client()
    path = tree_head_file or beside(st.pins(), ".treehead.json")
    head = verify_log(client, TreeHeadStore(path))
    entries = logged_entries(client, head)
    tree = merkle.MemoryTree(entries)
    if tree.root() != head.root:
        raise LogInconsistent(
            _("the entries the server serves do not make the tree it signed"),
            first_size=head.size,
            second_size=head.size,
        )
    trail = audit_pages(client)
    sealed = 0
    for entry in trail:
        leaf = entry.get("leaf_index")
        if leaf is None or leaf >= head.size:
            continue
        if differs(entry, json.loads(entries[leaf])):
            raise LogInconsistent(
                _("audit entry {seq} is not the entry logged at leaf {leaf}").format(
                    seq=entry.get("seq"), leaf=leaf
                ),
                first_size=head.size,
                second_size=head.size,
            )
        sealed += 1
    data = {
        "tree_size": head.size,
        "root_hash": head.root.hex(),
        "issued_at": head.issued_at,
        "trail_entries": len(trail),
        "trail_entries_verified": sealed,
        "trail_entries_not_yet_sealed": len(trail) - sealed,
    }

    def human() -> None:
        st.console.print(
            _(
                "audit trail OK: {size} log entries rebuild the signed root {root}… (signed "
                "{issued_at}); {verified} of {entries} trail entries checked against their leaf, "
                "{unsealed} not sealed yet"
            ).format(
                size=head.size,
                root=head.root.hex()[:16],
                issued_at=head.issued_at,
                verified=sealed,
                entries=len(trail),
                unsealed=len(trail) - sealed,
            ),
            highlight=False,
        )

    emit(st, data, human)
