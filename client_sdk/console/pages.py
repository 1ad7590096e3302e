"""The console's pages per role: focal point, HR officer, network admin, auditor.

Every page goes through `Kit.page` (lock, role, CSRF). Ids of cases, consents and requests
never appear in a URL: a page links to a random handle, valid until the console locks
(`Handles`), and people are only ever typed into POST forms.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from client_sdk._client import Client
from client_sdk.cli._common import beside, default_pin_file
from client_sdk.cli.cases import keep_registration, kept_registrations
from client_sdk.console.charts import bar_chart
from client_sdk.console.i18n import gettext_ as _
from client_sdk.console.labels import MAX_LABEL, LabelStore
from client_sdk.console.vault import Held, Vault, sha256_upload, today
from client_sdk.errors import ApiError, InvalidInput, RefcheckError
from client_sdk.models import CaseRegistration, DisclosureAnswer, Registration
from protocol.messages import OUTCOMES

Handler = Callable[[Request, Client, FormData | None], Awaitable[Response]]
MOU_WARNING_DAYS = 30


@dataclass
class Kit:
    page: Callable[..., Callable[[Handler], Callable[[Request], Awaitable[Response]]]]
    render: Callable[..., Response]
    call: Callable[..., Awaitable[Any]]
    text: Callable[[FormData | None, str], str]
    person_of: Callable[[FormData | None], dict[str, str]]
    vault: Vault
    labels: Callable[[], LabelStore]


class Handles:
    """Random handles standing for ids in URLs, forgotten when the console locks."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def _map(self) -> dict[str, str]:
        store: dict[str, str] = self.vault.__dict__.setdefault("_handles", {})
        if self.vault.session is None:
            store.clear()
        return store

    def of(self, value: str) -> str:
        store = self._map()
        for handle, held in store.items():
            if held == value:
                return handle
        handle = secrets.token_urlsafe(12)
        store[handle] = value
        return handle

    def get(self, handle: str) -> str | None:
        return self._map().get(handle)


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def routes(kit: Kit) -> list[Route]:
    page, render, call, text = kit.page, kit.render, kit.call, kit.text
    vault = kit.vault
    handles = Handles(vault)

    def not_found(request: Request) -> Response:
        return render(
            request,
            "message.html",
            status=404,
            title=_("Not found"),
            message=_("This link is no longer valid: the console was locked since. Start again."),
        )

    # -- focal point: registering ----------------------------------------------------------

    async def policy_choices(client: Client) -> dict[str, Any]:
        policy: dict[str, Any] = await call(client.policy)
        return {
            "categories": list(policy.get("categories") or {}),
            "sanctions": list(policy.get("sanctions") or []),
            "legal_bases": list(policy.get("allowed_legal_bases") or []),
            "policy": policy,
        }

    def validate_case(form: FormData | None, choices: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not text(form, "full_name"):
            errors["full_name"] = _("Enter the person's full name.")
        if not _date(text(form, "date_of_birth")):
            errors["date_of_birth"] = _("Enter the date of birth as a date.")
        for name in ("category", "sanction", "legal_basis"):
            options = {
                "category": choices["categories"],
                "sanction": choices["sanctions"],
                "legal_basis": choices["legal_bases"],
            }[name]
            if text(form, name) not in options:
                errors[name] = _("Choose one of the options.")
        finding = _date(text(form, "finding_date"))
        if finding is None:
            errors["finding_date"] = _("Enter the date of the finding.")
        elif finding > today():
            errors["finding_date"] = _("The finding date cannot be in the future.")
        notified = _date(text(form, "subject_notified_on"))
        if notified is None:
            errors["subject_notified_on"] = _("Enter when the person was told.")
        retention = _date(text(form, "retention_until"))
        if retention is None:
            errors["retention_until"] = _("Enter the date after which the case is deleted.")
        elif finding is not None and "category" not in errors:
            rules = choices["policy"]["categories"][text(form, "category")]
            years = rules[
                "max_retention_years_child_victim"
                if text(form, "child_victim")
                else "max_retention_years"
            ]
            limit = finding.replace(year=finding.year + int(years))
            if retention > limit:
                errors["retention_until"] = _(
                    "The policy allows at most {years} years after the finding (until {limit})."
                ).format(years=years, limit=limit.isoformat())
            elif retention <= today():
                errors["retention_until"] = _("The retention date must be in the future.")
        if not text(form, "mou_reference"):
            errors["mou_reference"] = _("Enter the MoU the registration rests on.")
        return errors

    @page("focal_point")
    async def case_new(request: Request, client: Client, form: FormData | None) -> Response:
        choices = await policy_choices(client)
        errors: dict[str, str] = {}
        general = None
        if form is not None:
            errors = validate_case(form, choices)
            if not errors:
                try:
                    registration = await call(
                        client.register_case,
                        kit.person_of(form),
                        CaseRegistration(
                            category=text(form, "category"),
                            finding_date=text(form, "finding_date"),
                            sanction=text(form, "sanction"),
                            legal_basis=text(form, "legal_basis"),
                            retention_until=text(form, "retention_until"),
                            mou_reference=text(form, "mou_reference"),
                            subject_notified_on=text(form, "subject_notified_on"),
                            child_victim=bool(text(form, "child_victim")),
                        ),
                    )
                except (InvalidInput, ApiError) as exc:
                    general = str(exc)
                else:
                    s = vault.settings
                    pins = s.pin_file or default_pin_file(s.credentials_path)
                    kept = beside(pins, ".cases.json")
                    if kept is not None:
                        await call(keep_registration, kept, client, registration)
                    if text(form, "label"):
                        await call(kit.labels().set, registration.case_id, text(form, "label"))
                    return _redirect("/cases?registered=1")
        values = {} if form is None else {k: text(form, k) for k in form}
        values.pop("csrf", None)
        return render(
            request,
            "case_new.html",
            status=422 if errors or general else 200,
            errors=errors,
            general=general,
            values=values,
            max_label=MAX_LABEL,
            **choices,
        )

    def kept_file() -> Any:
        s = vault.settings
        return beside(s.pin_file or default_pin_file(s.credentials_path), ".cases.json")

    def verify(client: Client, found: list[Any]) -> dict[str, str]:
        """verify-live for the cases registered from this machine; keeps re-issued values
        (after an OPRF key rotation) in place of the old ones."""
        path = kept_file()
        if path is None or not path.exists():
            return {}
        kept = kept_registrations(path, client)
        by_id = {c.id: c for c in found}
        registrations = [
            Registration(
                by_id[k],
                str(v["key_id"]),
                int(v["key_seq"]),
                tuple(int(x) for x in v["filter_values"]),
            )
            for k, v in kept.items()
            if k in by_id
        ]
        checks = client.verify_live(registrations)
        for check in checks:
            reissued = getattr(check, "reissued", None)
            if isinstance(reissued, Registration):
                keep_registration(path, client, reissued)
        return {c.case_id: c.status for c in checks}

    async def cases_page(
        request: Request, client: Client, live: dict[str, str] | None = None
    ) -> Response:
        found = await call(client.list_cases)
        labels = await call(kit.labels().all)
        if live is None:
            live = {}
        rows = [
            {
                "case": c,
                "label": labels.get(c.id, ""),
                "h": handles.of(c.id),
                "live": live.get(c.id),
            }
            for c in sorted(found, key=lambda c: c.created_at, reverse=True)
        ]
        return render(
            request,
            "cases.html",
            rows=rows,
            registered=request.query_params.get("registered") == "1",
            done=request.query_params.get("done", ""),
            max_label=MAX_LABEL,
            verified=bool(live),
            missing=sorted(k for k, v in live.items() if v == "missing"),
        )

    @page("focal_point")
    async def cases(request: Request, client: Client, form: FormData | None) -> Response:
        return await cases_page(request, client)

    @page("focal_point", post=True)
    async def cases_verify(request: Request, client: Client, form: FormData | None) -> Response:
        found = await call(client.list_cases)
        live = await call(verify, client, found)
        return await cases_page(request, client, live)

    @page("focal_point", post=True)
    async def case_action(request: Request, client: Client, form: FormData | None) -> Response:
        case_id = handles.get(text(form, "h"))
        if case_id is None:
            return not_found(request)
        action = request.path_params["action"]
        if action == "label":
            await call(kit.labels().set, case_id, text(form, "label"))
        elif action == "withdraw":
            await call(client.withdraw_case, case_id, text(form, "reason") or "other")
        elif action == "retention":
            when = _date(text(form, "retention_until"))
            if when is None:
                raise InvalidInput("the new retention date is not a date")
            response = await call(
                client.request,
                "PATCH",
                f"/v1/cases/{case_id}",
                json={"retention_until": when.isoformat()},
            )
            if response.status_code >= 400:
                raise InvalidInput(str(response.json().get("detail", "refused")))
        return _redirect(f"/cases?done={action}")

    # -- focal point: disclosure inbox -----------------------------------------------------

    def by_due(items: list[Any]) -> list[Any]:
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        return sorted(items, key=lambda d: d.due_at or far)

    @page("focal_point")
    async def inbox(request: Request, client: Client, form: FormData | None) -> Response:
        items = by_due(await call(client.list_disclosures, "holder"))
        rows = [{"d": d, "h": handles.of(d.id)} for d in items]
        return render(request, "inbox.html", rows=rows, sent=request.query_params.get("sent"))

    @page("focal_point")
    async def inbox_one(request: Request, client: Client, form: FormData | None) -> Response:
        request_id = handles.get(request.path_params["h"])
        if request_id is None:
            return not_found(request)
        d = await call(client.get_disclosure, request_id)
        details = None
        if d.sealed_applicant_details is not None:
            details = await call(client.read_applicant_details, request_id)
        choices = await policy_choices(client)
        return render(
            request,
            "inbox_one.html",
            d=d,
            h=request.path_params["h"],
            details=details,
            errors={},
            values={},
            **choices,
        )

    @page("focal_point", post=True)
    async def inbox_answer(request: Request, client: Client, form: FormData | None) -> Response:
        request_id = handles.get(request.path_params["h"])
        if request_id is None:
            return not_found(request)
        same = text(form, "same_person")
        errors: dict[str, str] = {}
        if same not in ("confirmed", "not_same_person", "declined"):
            errors["same_person"] = _("Choose one answer.")
        if same == "confirmed":
            for name in ("category", "sanction"):
                if not text(form, name):
                    errors[name] = _("Choose one of the options.")
            if not _date(text(form, "finding_date")):
                errors["finding_date"] = _("Enter the date of the finding.")
        if same == "declined" and not text(form, "decline_reason"):
            errors["decline_reason"] = _("Say why you decline.")
        if not errors:
            await call(
                client.answer_disclosure,
                request_id,
                DisclosureAnswer(
                    same_person=same,  # type: ignore[arg-type]  # one of the three, checked above
                    category=text(form, "category") or None if same == "confirmed" else None,
                    child_victim=bool(text(form, "child_victim")) if same == "confirmed" else None,
                    finding_date=text(form, "finding_date") or None
                    if same == "confirmed"
                    else None,
                    sanction=text(form, "sanction") or None if same == "confirmed" else None,
                    text=text(form, "text") or None,
                    contact=text(form, "contact") or None,
                    decline_reason=text(form, "decline_reason") or None,
                ),
            )
            return _redirect("/inbox?sent=1")
        d = await call(client.get_disclosure, request_id)
        details = None
        if d.sealed_applicant_details is not None:
            details = await call(client.read_applicant_details, request_id)
        values = {k: text(form, k) for k in form or {}}
        return render(
            request,
            "inbox_one.html",
            status=422,
            d=d,
            h=request.path_params["h"],
            details=details,
            errors=errors,
            values=values,
            **await policy_choices(client),
        )

    # -- HR officer ------------------------------------------------------------------------

    def consents_kept() -> list[dict[str, str]]:
        kept: list[dict[str, str]] = vault.__dict__.setdefault("_consents", [])
        if vault.session is None:
            kept.clear()
        return kept

    @page("hr_checker")
    async def consent_new(request: Request, client: Client, form: FormData | None) -> Response:
        policy = await call(client.policy)
        purposes = list(policy.get("consent_purposes") or {})
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        if form is not None:
            values = {k: text(form, k) for k in form if k != "signed_form"}
            upload = form.get("signed_form")
            digest = None
            if isinstance(upload, UploadFile) and upload.filename:
                digest = await call(sha256_upload, upload)
            else:
                errors["signed_form"] = _("Choose the scanned or signed form to upload.")
            for name in ("applicant_ref", "position_ref"):
                if not text(form, name):
                    errors[name] = _("Enter your own reference (never a name).")
            if text(form, "purpose") not in purposes:
                errors["purpose"] = _("Choose one of the options.")
            if text(form, "self_declared_finding") not in ("yes", "no"):
                errors["self_declared_finding"] = _("Choose what the applicant declared.")
            if not errors and digest is not None:
                try:
                    recorded = await call(
                        client.record_consent,
                        applicant_ref=text(form, "applicant_ref"),
                        purpose=text(form, "purpose"),
                        position_ref=text(form, "position_ref"),
                        form_sha256=digest,
                        self_declared_finding=text(form, "self_declared_finding") == "yes",
                    )
                except InvalidInput as exc:
                    errors["applicant_ref"] = str(exc)
                else:
                    consent = await call(client.get_consent, recorded.id)
                    consents_kept().insert(
                        0,
                        {
                            "h": handles.of(recorded.id),
                            "applicant_ref": text(form, "applicant_ref"),
                            "position_ref": text(form, "position_ref"),
                        },
                    )
                    return render(
                        request,
                        "consent_done.html",
                        code=recorded.lookup_code,
                        consent=consent,
                        h=handles.of(recorded.id),
                        digest=digest,
                    )
        return render(
            request,
            "consent_new.html",
            status=422 if errors else 200,
            purposes=purposes,
            errors=errors,
            values=values,
        )

    @page("hr_checker")
    async def check(request: Request, client: Client, form: FormData | None) -> Response:
        errors: dict[str, str] = {}
        values: dict[str, str] = {"c": request.query_params.get("c", "")}
        if form is not None:
            values = {k: text(form, k) for k in form}
            consent_id = handles.get(text(form, "c")) or text(form, "consent_id")
            if not consent_id:
                errors["c"] = _("Choose the applicant's consent.")
            if not text(form, "full_name"):
                errors["full_name"] = _("Enter the applicant's full name.")
            if not _date(text(form, "date_of_birth")):
                errors["date_of_birth"] = _("Enter the date of birth as a date.")
            if not errors:
                person = kit.person_of(form)
                result = await call(client.check_applicant, person, consent_id)
                token = secrets.token_urlsafe(16)
                vault.results[token] = Held(result=result, person=person, at=0.0)
                return _redirect(f"/results/{token}")
        return render(
            request,
            "check.html",
            status=422 if errors else 200,
            errors=errors,
            values=values,
            consents=consents_kept(),
        )

    @page("hr_checker")
    async def result(request: Request, client: Client, form: FormData | None) -> Response:
        held = vault.results.get(request.path_params["t"])
        if held is None:
            return not_found(request)
        return render(
            request,
            "result.html",
            r=held.result,
            cases=held.result.by_case(),
            t=request.path_params["t"],
            requested=held.requested,
        )

    @page("hr_checker", post=True)
    async def result_request(request: Request, client: Client, form: FormData | None) -> Response:
        held = vault.results.get(request.path_params["t"])
        if held is None:
            return not_found(request)
        for match in held.result.by_case():
            request_id = await call(client.request_disclosure, match, applicant=held.person)
            held.requested.append(request_id)
        return _redirect("/requests?asked=1")

    @page("hr_checker")
    async def requests(request: Request, client: Client, form: FormData | None) -> Response:
        items = by_due(await call(client.list_disclosures, "requester"))
        rows = [{"d": d, "h": handles.of(d.id)} for d in items]
        return render(request, "requests.html", rows=rows, asked=request.query_params.get("asked"))

    async def opened(client: Client, request_id: str) -> tuple[Any, Any]:
        d = await call(client.get_disclosure, request_id)
        answer = None
        if d.sealed_answer is not None:
            answer = await call(client.read_disclosure_answer, request_id)
        return d, answer

    @page("hr_checker")
    async def request_one(request: Request, client: Client, form: FormData | None) -> Response:
        request_id = handles.get(request.path_params["h"])
        if request_id is None:
            return not_found(request)
        d, answer = await opened(client, request_id)
        return render(
            request,
            "request_one.html",
            d=d,
            answer=answer,
            h=request.path_params["h"],
            done=request.query_params.get("done", ""),
        )

    @page("hr_checker", post=True)
    async def request_action(request: Request, client: Client, form: FormData | None) -> Response:
        h = request.path_params["h"]
        request_id = handles.get(h)
        if request_id is None:
            return not_found(request)
        action = request.path_params["action"]
        if action == "outcome":
            outcome = text(form, "outcome")
            if outcome not in OUTCOMES:
                raise InvalidInput("choose one of the outcomes")
            await call(client.report_outcome, request_id, outcome)
        elif action == "close":
            await call(client.close_disclosure, request_id)
        elif action == "withdraw":
            await call(client.withdraw_disclosure, request_id)
        return _redirect(f"/requests/{h}?done={action}")

    @page("hr_checker")
    async def request_pdf(request: Request, client: Client, form: FormData | None) -> Response:
        from client_sdk.console.pdf import answer_pdf

        request_id = handles.get(request.path_params["h"])
        if request_id is None:
            return not_found(request)
        d, answer = await opened(client, request_id)
        if answer is None:
            raise InvalidInput("there is no answer to export yet")
        body = answer_pdf(d, answer)
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="disclosure-answer.pdf"'},
        )

    # -- network admin and auditor ---------------------------------------------------------

    @page("network_admin")
    async def orgs(request: Request, client: Client, form: FormData | None) -> Response:
        found = await call(client.list_orgs)
        soon = today() + dt.timedelta(days=MOU_WARNING_DAYS)
        rows = []
        for org in sorted(found, key=lambda o: o.get("short_name") or ""):
            expires = _date(str(org.get("mou_expires_on") or ""))
            rows.append(
                {
                    "org": org,
                    "h": handles.of(str(org["id"])),
                    "expires": expires,
                    "expiring": expires is not None and expires <= soon,
                    "expired": expires is not None and expires < today(),
                }
            )
        return render(
            request,
            "orgs.html",
            rows=rows,
            days=MOU_WARNING_DAYS,
            done=request.query_params.get("done", ""),
        )

    @page("network_admin", post=True)
    async def org_action(request: Request, client: Client, form: FormData | None) -> Response:
        org_id = handles.get(text(form, "h"))
        if org_id is None:
            return not_found(request)
        action = request.path_params["action"]
        if action in ("suspended", "active", "withdrawn"):
            await call(client.update_org, org_id, status=action)
        elif action == "renew":
            signed = _date(text(form, "mou_signed_on"))
            expires = _date(text(form, "mou_expires_on"))
            if signed is None or expires is None:
                raise InvalidInput("enter both MoU dates")
            await call(
                client.update_org,
                org_id,
                mou_signed_on=signed.isoformat(),
                mou_expires_on=expires.isoformat(),
            )
        return _redirect(f"/admin/orgs?done={action}")

    ROLES = ("focal_point", "hr_checker", "network_admin", "auditor")

    @page("network_admin")
    async def people(request: Request, client: Client, form: FormData | None) -> Response:
        h = request.path_params["h"]
        org_id = handles.get(h)
        if org_id is None:
            return not_found(request)
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        if form is not None:
            values = {k: text(form, k) for k in form}
            if text(form, "action") == "deactivate":
                principal = handles.get(text(form, "p"))
                if principal is None:
                    return not_found(request)
                await call(client.deactivate_principal, principal)
                return _redirect(f"/admin/orgs/{h}/people")
            roles = [r for r in ROLES if text(form, f"role_{r}")]
            key = text(form, "auth_public_key").lower()
            if not text(form, "name"):
                errors["name"] = _("Enter the person's or system's name.")
            if not roles:
                errors["roles"] = _("Choose at least one role.")
            if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
                errors["auth_public_key"] = _(
                    "Paste the public key (64 hexadecimal characters) from `refcheck keys init`."
                )
            if not errors:
                await call(
                    client.add_principal,
                    org_id,
                    name=text(form, "name"),
                    kind="service" if text(form, "kind") == "service" else "person",
                    roles=roles,
                    auth_public_key=key,
                )
                return _redirect(f"/admin/orgs/{h}/people")
        orgs_found: list[dict[str, Any]] = await call(client.list_orgs)
        org: dict[str, Any] = next((o for o in orgs_found if o["id"] == org_id), {})
        found = await call(client.list_principals, org_id)
        rows = [{"p": p, "h": handles.of(str(p["id"]))} for p in found]
        return render(
            request,
            "people.html",
            status=422 if errors else 200,
            org=org,
            h=h,
            rows=rows,
            roles_all=ROLES,
            errors=errors,
            values=values,
        )

    @page("network_admin", "auditor")
    async def policy(request: Request, client: Client, form: FormData | None) -> Response:
        return render(request, "policy.html", policy=await call(client.policy))

    def figures_of(stats: dict[str, Any]) -> dict[str, Any]:
        months = stats.get("months") or []
        labels = [str(m.get("month", ""))[5:] for m in months]

        def series(name: str) -> list[int]:
            return [int((m.get("counters") or {}).get(name, 0)) for m in months]

        return {
            "charts": [
                bar_chart(_("Checks per month"), labels, [(_("Checks"), series("checks_run"))]),
                bar_chart(
                    _("Disclosure answers, overdue and expired requests per month"),
                    labels,
                    [
                        (_("Answers given"), series("disclosure_responses_given")),
                        (_("Overdue"), series("disclosure_requests_overdue")),
                        (_("Expired unanswered"), series("disclosure_requests_expired")),
                    ],
                ),
                bar_chart(_("Refusals"), labels, [(_("Checks refused"), series("checks_refused"))]),
                bar_chart(
                    _("Registration evaluations against registrations"),
                    labels,
                    [
                        (_("Registrations"), series("cases_registered")),
                        (_("Evaluations"), series("registration_evaluations")),
                    ],
                ),
            ],
        }

    @page("network_admin", "auditor")
    async def stats(request: Request, client: Client, form: FormData | None) -> Response:
        from client_sdk.cli._http import call_json
        from client_sdk.cli.disclosures import MDS_COLUMNS, mds_rows
        from client_sdk.console.admin import answer_times_view

        year_text = request.query_params.get("year", "")
        year = int(year_text) if year_text.isdigit() else None
        figures = await call(client.stats, year)
        # The same year as the counters (the server's current year when none was asked for).
        params = {"year": str(figures["year"])}
        answers = await call(call_json, client, "GET", "/v1/stats/answer-times", params=params)
        return render(
            request,
            "stats.html",
            figures=figures,
            mds=mds_rows(figures),
            columns=MDS_COLUMNS,
            answer_times=answer_times_view(answers),
            **figures_of(figures),
        )

    @page("network_admin", "auditor")
    async def stats_csv(request: Request, client: Client, form: FormData | None) -> Response:
        from client_sdk.cli.disclosures import mds_csv

        figures = await call(client.stats, None)
        return Response(
            mds_csv(figures),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="mds-figures.csv"'},
        )

    @page("network_admin", "auditor")
    async def audit(request: Request, client: Client, form: FormData | None) -> Response:
        from client_sdk.transparency import verify_log

        response = await call(client.request, "GET", "/v1/audit", params={"limit": "100"})
        entries = response.json().get("items", []) if response.status_code == 200 else []
        verified: dict[str, Any] = {"ok": False, "size": None, "error": None}
        try:
            head = await call(verify_log, client)
            verified.update(ok=True, size=getattr(head, "tree_size", None))
        except RefcheckError as exc:
            verified["error"] = str(exc)
        return render(
            request, "audit.html", entries=list(reversed(entries))[:100], verified=verified
        )

    @page("network_admin")
    async def overdue(request: Request, client: Client, form: FormData | None) -> Response:
        items = by_due(await call(client.list_disclosures, None, None, True))
        return render(request, "overdue.html", items=items)

    from client_sdk.console import admin, rescreen

    return [
        *rescreen.routes(kit),
        *admin.routes(kit, handles, not_found),
        Route("/cases/new", case_new, methods=["GET", "POST"]),
        Route("/cases", cases),
        Route("/cases/verify-live", cases_verify, methods=["POST"]),
        Route("/cases/{action:str}", case_action, methods=["POST"]),
        Route("/inbox", inbox),
        Route("/inbox/{h:str}", inbox_one),
        Route("/inbox/{h:str}/answer", inbox_answer, methods=["POST"]),
        Route("/consents/new", consent_new, methods=["GET", "POST"]),
        Route("/check", check, methods=["GET", "POST"]),
        Route("/results/{t:str}", result),
        Route("/results/{t:str}/request", result_request, methods=["POST"]),
        Route("/requests", requests),
        Route("/requests/{h:str}", request_one),
        Route("/requests/{h:str}/answer.pdf", request_pdf),
        Route("/requests/{h:str}/{action:str}", request_action, methods=["POST"]),
        Route("/admin/orgs", orgs),
        Route("/admin/orgs/{action:str}", org_action, methods=["POST"]),
        Route("/admin/orgs/{h:str}/people", people, methods=["GET", "POST"]),
        Route("/admin/policy", policy),
        Route("/admin/stats", stats),
        Route("/admin/stats.csv", stats_csv),
        Route("/admin/audit", audit),
        Route("/admin/overdue", overdue),
    ]
