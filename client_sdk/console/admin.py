"""The secretariat's pages beside the MoU registry: the retention overview (live cases by the
month their retention ends, per member), the statistics page's answer times (`answer_times_view`)
and replacing a member's public keys.

Replacing keys works as `refcheck admin org update ORG --keys KEYSTORE`: only public keys are
read (pasted, or from the member's keystore or `refcheck keys show --json` output), the new
organisation fingerprint is computed here and shown for the member to read out, and only after
the admin confirms that they match is the registry changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from client_sdk._client import Client
from client_sdk.cli._http import call_json
from client_sdk.console.charts import bar_chart, histogram
from client_sdk.console.i18n import gettext_ as _
from client_sdk.pinning import normalise_fingerprint, org_key_fingerprint

__all__ = ["OrgKeyInput", "answer_times_view", "read_org_keys", "retention_table", "routes"]

#: Names of the two organisation keys, as the registry API and the keystore name them.
KEY_FIELDS = ("x25519_public_key", "ed25519_public_key")
#: A public-key file is a few hundred bytes; anything much larger is not one.
MAX_KEY_FILE = 64 * 1024
_HEX = frozenset("0123456789abcdef")


# -- answer times (statistics page) ------------------------------------------------------------


def answer_time_labels() -> dict[str, tuple[str, str]]:
    """Each bucket of `GET /v1/stats/answer-times` in plain words (in the page's language) and
    its kind: answered in time, answered late, or not answered."""
    return {
        "early_7_plus": (_("Answered 7 or more days before the deadline"), "good"),
        "early_3_to_6": (_("Answered 3 to 6 days before the deadline"), "good"),
        "early_0_to_2": (_("Answered 0 to 2 days before the deadline"), "good"),
        "late_1_to_3": (_("Answered 1 to 3 days late"), "late"),
        "late_4_plus": (_("Answered 4 or more days late"), "late"),
        "open_overdue": (_("Not answered yet, past the deadline"), "missing"),
        "expired": (_("Expired without an answer"), "missing"),
    }


def answer_times_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """`GET /v1/stats/answer-times` as a histogram of the year (one bar per bucket, in the
    server's order) and its table: one row per month with any request (oldest first), a count
    per bucket and the month's total, the year's totals last. No chart when nothing is counted.
    A bucket this console does not know is shown under its own name."""
    known = answer_time_labels()
    buckets = [str(b) for b in data.get("buckets") or []]
    columns = [
        {"bucket": b, "label": known.get(b, (b, ""))[0], "kind": known.get(b, (b, ""))[1]}
        for b in buckets
    ]
    rows = []
    for month in data.get("months") or []:
        counts = [int((month.get("counts") or {}).get(b, 0)) for b in buckets]
        if sum(counts):
            rows.append(
                {"month": str(month.get("month", "")), "counts": counts, "total": sum(counts)}
            )
    totals = [int((data.get("totals") or {}).get(b, 0)) for b in buckets]
    chart = None
    if sum(totals):
        chart = histogram(
            _("Disclosure answer times against the deadline"),
            [(c["label"], n, c["kind"]) for c, n in zip(columns, totals, strict=True)],
        )
    return {
        "columns": columns,
        "rows": rows,
        "totals": totals,
        "total": sum(totals),
        "chart": chart,
        "retention_days": data.get("record_retention_days"),
    }


# -- retention overview ----------------------------------------------------------------------


def retention_table(overview: Mapping[str, Any]) -> dict[str, Any]:
    """`GET /v1/stats/retention` as a table: one row per month (oldest first) with a count per
    member and the month's total, members' totals last. Months before `as_of`'s month are
    marked `past`: live cases there should have been deleted already."""
    orgs = list(overview.get("organisations") or [])
    members = [str(o.get("short_name") or o.get("org_id") or "") for o in orgs]
    counts = [{str(m["month"]): int(m["live_cases"]) for m in o.get("months") or []} for o in orgs]
    months = sorted(
        {str(m["month"]) for m in overview.get("months") or []}.union(*(c.keys() for c in counts))
    )
    current = str(overview.get("as_of") or "")[:7]
    rows = [
        {
            "month": month,
            "counts": [c.get(month, 0) for c in counts],
            "total": sum(c.get(month, 0) for c in counts),
            "past": bool(current) and month < current,
        }
        for month in months
    ]
    totals = [sum(c.values()) for c in counts]
    return {"members": members, "rows": rows, "totals": totals, "total": sum(totals)}


# -- reading a member's public keys ---------------------------------------------------------


@dataclass
class OrgKeyInput:
    """The organisation keys given on the form, or what is wrong with them, by form field."""

    keys: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return org_key_fingerprint(
            bytes.fromhex(self.keys["x25519_public_key"]),
            bytes.fromhex(self.keys["ed25519_public_key"]),
        )


def _hex_key(value: str) -> str:
    """A pasted key, without the spaces and line breaks a terminal or e-mail adds."""
    return "".join(value.split()).lower()


def _key_problem(value: str) -> str | None:
    if len(value) != 64 or not set(value) <= _HEX:
        return _("A public key is 64 hexadecimal characters (0-9, a-f).")
    if value == "0" * 64:
        return _("The all-zero key is not a public key.")
    return None


def _keys_from_file(data: bytes) -> tuple[dict[str, str], str | None]:
    """The two public keys of a keystore, an export file or `refcheck keys show --json`
    output; or why the file is not one."""
    if len(data) > MAX_KEY_FILE:
        return {}, _("This file is too large to be a public-key file.")
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return {}, _("This file is not a refcheck public-key file (it is not JSON).")
    if not isinstance(document, dict):
        return {}, _("This file is not a refcheck public-key file.")
    if document.get("secrets") is not None or document.get("org_keys") is not None:
        return {}, _(
            "This file holds private keys in the clear: they must never leave the member's "
            "computer. Ask the member for the public keys only (`refcheck keys show --json`), "
            "and to make new keys if the file was sent by e-mail."
        )
    inner = document.get("public")
    public: dict[str, Any] = inner if isinstance(inner, dict) else document
    if not all(isinstance(public.get(k), str) for k in KEY_FIELDS):
        if isinstance(public.get("auth_public_key"), str):
            return {}, _(
                "This file has a person's key only, no organisation keys (it was made with "
                "--auth-only): ask for the file of the keys made with `refcheck keys init`."
            )
        return {}, _("This file is not a refcheck public-key file.")
    keys = {k: _hex_key(public[k]) for k in KEY_FIELDS}
    for name in KEY_FIELDS:
        problem = _key_problem(keys[name])
        if problem is not None:
            return {}, problem
    stated = document.get("org_fingerprint")
    if isinstance(stated, str):
        found = org_key_fingerprint(
            bytes.fromhex(keys["x25519_public_key"]), bytes.fromhex(keys["ed25519_public_key"])
        )
        if normalise_fingerprint(stated) != normalise_fingerprint(found):
            return {}, _(
                "The fingerprint written in this file is not that of its keys: the file was "
                "changed. Ask the member to send it again."
            )
    return keys, None


def read_org_keys(
    pasted: Mapping[str, str], file_data: bytes | None, current: Mapping[str, Any]
) -> OrgKeyInput:
    """The new organisation keys from the pasted fields or the uploaded file (not both), with
    each problem beside the field it is about. Keys equal to `current` (the organisation's
    record) are refused: nothing would change."""
    out = OrgKeyInput()
    given = {k: _hex_key(pasted.get(k, "")) for k in KEY_FIELDS}
    if file_data is not None:
        if any(given.values()):
            out.errors["public_file"] = _(
                "Give the keys either as a file or pasted, not both: clear the pasted keys or "
                "the file."
            )
            return out
        keys, problem = _keys_from_file(file_data)
        if problem is not None:
            out.errors["public_file"] = problem
            return out
        where = {k: "public_file" for k in KEY_FIELDS}
    else:
        for name in KEY_FIELDS:
            if not given[name]:
                out.errors[name] = _(
                    "Paste this key (64 hexadecimal characters), or upload the member's "
                    "public-key file instead."
                )
            elif (problem := _key_problem(given[name])) is not None:
                out.errors[name] = problem
        if out.errors:
            return out
        keys = given
        where = {k: k for k in KEY_FIELDS}
    if keys["x25519_public_key"] == keys["ed25519_public_key"]:
        out.errors[where["ed25519_public_key"]] = _(
            "The two keys are the same: the signing key was pasted twice, or into the wrong field."
        )
        return out
    if all(keys[k] == (current.get(k) or "") for k in KEY_FIELDS):
        out.errors[where["x25519_public_key"]] = _(
            "These are the keys on record already: nothing would change."
        )
        return out
    out.keys = keys
    return out


def current_fingerprint(org: Mapping[str, Any]) -> str | None:
    x, ed = (org.get(k) for k in KEY_FIELDS)
    if not isinstance(x, str) or not isinstance(ed, str):
        return None
    try:
        return org_key_fingerprint(bytes.fromhex(x), bytes.fromhex(ed))
    except ValueError:
        return None


# -- pages -----------------------------------------------------------------------------------


def routes(kit: Any, handles: Any, not_found: Callable[[Request], Response]) -> list[Route]:
    """The admin's pages; `handles` and `not_found` are the other pages' (`pages.routes`)."""
    page, render, call, text = kit.page, kit.render, kit.call, kit.text

    @page("network_admin", "auditor")
    async def retention(request: Request, client: Client, form: FormData | None) -> Response:
        overview: dict[str, Any] = await call(call_json, client, "GET", "/v1/stats/retention")
        table = retention_table(overview)
        chart = None
        if table["rows"]:
            chart = bar_chart(
                _("Live cases by the month their retention ends"),
                [r["month"] for r in table["rows"]],
                [(_("Live cases"), [r["total"] for r in table["rows"]])],
            )
        return render(
            request,
            "retention.html",
            as_of=str(overview.get("as_of") or ""),
            chart=chart,
            **table,
        )

    @page("network_admin")
    async def org_keys(request: Request, client: Client, form: FormData | None) -> Response:
        h = request.path_params["h"]
        org_id = handles.get(h)
        if org_id is None:
            return not_found(request)
        found: list[dict[str, Any]] = await call(client.list_orgs)
        org = next((o for o in found if o.get("id") == org_id), None)
        if org is None:
            return not_found(request)
        context: dict[str, Any] = {
            "org": org,
            "h": h,
            "current": current_fingerprint(org),
            "errors": {},
            "values": {},
            "new": None,
        }
        if form is None:
            return render(request, "org_keys.html", **context)
        pasted = {k: text(form, k) for k in KEY_FIELDS}
        upload = form.get("public_file")
        data = None
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
        given = read_org_keys(pasted, data, org)
        context["values"] = pasted
        if given.errors:
            context["errors"] = given.errors
            return render(request, "org_keys.html", status=422, **context)
        context["new"] = given
        if text(form, "step") != "replace":
            # First step: show the new fingerprint, for the member to read out.
            return render(request, "org_keys.html", **context)
        if normalise_fingerprint(text(form, "fingerprint")) != normalise_fingerprint(
            given.fingerprint
        ):
            context["new"] = None
            context["errors"] = {
                "public_file": _("The keys changed after their fingerprint was shown: start again.")
            }
            return render(request, "org_keys.html", status=422, **context)
        if not text(form, "read_out"):
            context["errors"] = {
                "read_out": _(
                    "Tick this only once the member has read this same fingerprint out to you."
                )
            }
            return render(request, "org_keys.html", status=422, **context)
        await call(client.update_org, org_id, **given.keys)
        return RedirectResponse("/admin/orgs?done=keys", status_code=303)

    return [
        Route("/admin/retention", retention),
        Route("/admin/orgs/{h:str}/keys", org_keys, methods=["GET", "POST"]),
    ]
