"""The network policy: the shipped file, what an invalid one does, and `GET /v1/policy`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from server.app import create_app
from server.policy.schema import (
    MIN_RETENTION_YEARS,
    Category,
    LegalBasis,
    PolicyError,
    load_policy,
)
from server.settings import DEFAULT_POLICY_FILE, Settings

SHIPPED = tomllib.loads(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _variant(tmp_path: Path, **changes) -> Path:
    """The shipped policy with top-level keys replaced (None deletes), written as TOML."""
    data = dict(SHIPPED)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return _write(tmp_path, _to_toml(data))


def _to_toml(data: dict) -> str:
    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return str(v)

    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {scalar(value)}")
    for name, table in tables:
        for sub, rule in table.items():
            lines.append(f"[{name}.{sub}]")
            lines += [f"{k} = {scalar(v)}" for k, v in rule.items()]
    return "\n".join(lines) + "\n"


def test_shipped_policy_is_valid_and_allows_the_agreed_legal_bases():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert {
        LegalBasis.LEGITIMATE_INTERESTS,
        LegalBasis.LEGAL_OBLIGATION,
        LegalBasis.CONTRACT,
        LegalBasis.CONSENT,
    } <= set(policy.allowed_legal_bases)
    assert policy.allow_under_investigation is False
    for category in Category:
        for child_victim in (False, True):
            assert policy.max_retention_years(category, child_victim) >= MIN_RETENTION_YEARS


def test_shipped_policy_bounds_evaluations_and_keeps_disclosure_records_for_two_years():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.keys_per_check == 32
    assert policy.keys_per_check <= policy.daily_evaluation_quota == 2000
    assert policy.disclosure_expiry_days_after_due == 30
    assert policy.disclosure_record_retention_days == 730
    assert policy.disclosure_record_retention_days >= max(
        rule.max_validity_days for rule in policy.consent_purposes.values()
    )


def test_shipped_policy_publishes_the_filter_hourly_and_rotates_the_key_quarterly():
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert policy.filter_publish_seconds == 3600
    assert policy.entry_fetch_window_seconds == 300
    assert policy.oprf_key_rotation_days == 90


def test_policy_at_its_lower_bounds_is_accepted(tmp_path):
    """The cross-field rules refuse only what they must: equal to the bound is fine."""
    policy = load_policy(
        _variant(
            tmp_path,
            daily_evaluation_quota=SHIPPED["keys_per_check"],
            disclosure_record_retention_days=365,
            disclosure_expiry_days_after_due=1,
            filter_publish_seconds=0,
            entry_fetch_window_seconds=30,
            oprf_key_rotation_days=1,
        )
    )
    assert policy.daily_evaluation_quota == policy.keys_per_check
    assert policy.filter_publish_seconds == 0


def test_policy_at_its_upper_bounds_is_accepted(tmp_path):
    policy = load_policy(
        _variant(
            tmp_path,
            keys_per_check=255,
            filter_publish_seconds=86400,
            entry_fetch_window_seconds=3600,
            oprf_key_rotation_days=90,
        )
    )
    # One byte counts a registration's keys: 255 is the most a case can hold.
    assert policy.keys_per_check == 255


def test_keys_per_check_defaults_to_32(tmp_path):
    assert load_policy(_variant(tmp_path, keys_per_check=None)).keys_per_check == 32


def test_round_trip_of_the_test_helper_keeps_the_policy(tmp_path):
    assert load_policy(_variant(tmp_path)) == load_policy(DEFAULT_POLICY_FILE)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        # Version-1 members are refused, not ignored: a policy that still sets them was written
        # for a protocol this server no longer speaks.
        ({"bucket_bits": 12}, "bucket_bits"),
        ({"max_keys_per_check": 64}, "max_keys_per_check"),
        ({"keys_per_check": 0}, "keys_per_check"),
        ({"keys_per_check": 256}, "keys_per_check"),
        ({"filter_publish_seconds": -1}, "filter_publish_seconds"),
        ({"filter_publish_seconds": 86401}, "filter_publish_seconds"),
        ({"entry_fetch_window_seconds": 29}, "entry_fetch_window_seconds"),
        ({"entry_fetch_window_seconds": 3601}, "entry_fetch_window_seconds"),
        ({"oprf_key_rotation_days": 0}, "oprf_key_rotation_days"),
        ({"oprf_key_rotation_days": 91}, "oprf_key_rotation_days"),
        ({"daily_check_quota": 0}, "daily_check_quota"),
        ({"daily_evaluation_quota": 0}, "daily_evaluation_quota"),
        ({"daily_evaluation_quota": None}, "daily_evaluation_quota"),
        # Below one registration's keys_per_check (32 in the shipped file).
        ({"daily_evaluation_quota": 31}, "daily_evaluation_quota must be >= keys_per_check"),
        ({"disclosure_expiry_days_after_due": 0}, "disclosure_expiry_days_after_due"),
        ({"disclosure_expiry_days_after_due": 366}, "disclosure_expiry_days_after_due"),
        ({"disclosure_expiry_days_after_due": None}, "disclosure_expiry_days_after_due"),
        ({"disclosure_record_retention_days": 0}, "disclosure_record_retention_days"),
        ({"disclosure_record_retention_days": None}, "disclosure_record_retention_days"),
        # Shorter than the rescreening consent's 365 days of validity.
        ({"disclosure_record_retention_days": 364}, "longest consent validity (365 days)"),
        ({"disclosure_response_deadline_days": 0}, "disclosure_response_deadline_days"),
        ({"allowed_legal_bases": ["legitimate_interest"]}, "allowed_legal_bases"),
        ({"allowed_legal_bases": []}, "allowed_legal_bases"),
        ({"allowed_legal_bases": ["consent", "consent"]}, "twice"),
        ({"sanctions": ["public_shaming"]}, "sanctions"),
        ({"withdrawn_org_cases": "forget"}, "withdrawn_org_cases"),
        ({"retention_years": 5}, "retention_years"),  # an unknown key is a typo, not ignored
        ({"version": None}, "version"),
    ],
)
def test_invalid_policy_is_refused_naming_the_rule(tmp_path, changes, names):
    with pytest.raises(PolicyError) as info:
        load_policy(_variant(tmp_path, **changes))
    assert names in str(info.value)
    assert "is invalid" in str(info.value)


def test_retention_below_five_years_is_refused(tmp_path):
    categories = {k: dict(v) for k, v in SHIPPED["categories"].items()}
    categories["sexual_harassment"]["max_retention_years"] = 4
    with pytest.raises(PolicyError, match="sexual_harassment.max_retention_years"):
        load_policy(_variant(tmp_path, categories=categories))


def test_child_victim_retention_shorter_than_the_default_is_refused(tmp_path):
    categories = {k: dict(v) for k, v in SHIPPED["categories"].items()}
    categories["sexual_abuse"]["max_retention_years_child_victim"] = 6
    with pytest.raises(PolicyError, match="max_retention_years_child_victim"):
        load_policy(_variant(tmp_path, categories=categories))


def test_a_category_without_a_rule_is_refused(tmp_path):
    categories = {k: v for k, v in SHIPPED["categories"].items() if k != "sexual_exploitation"}
    with pytest.raises(PolicyError, match="sexual_exploitation"):
        load_policy(_variant(tmp_path, categories=categories))


def test_consent_validity_beyond_two_years_is_refused(tmp_path):
    purposes = {k: dict(v) for k, v in SHIPPED["consent_purposes"].items()}
    purposes["recruitment"]["max_validity_days"] = 1000
    with pytest.raises(PolicyError, match="max_validity_days"):
        load_policy(_variant(tmp_path, consent_purposes=purposes))


def test_malformed_or_missing_policy_file_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(_write(tmp_path, "version = \n"))
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.toml")


def test_app_refuses_to_start_on_an_invalid_policy(tmp_path, key_dir):
    settings = Settings(
        environment="test",
        data_dir=key_dir,
        policy_file=_variant(tmp_path, keys_per_check=0),
        run_background_jobs=False,
    )
    with pytest.raises(PolicyError, match="keys_per_check"):
        create_app(settings)


@pytest.mark.anyio
async def test_policy_route_shows_the_policy_in_force(network, client, ctx):
    response = await client.get("/v1/policy", headers=network.a_hr.headers)
    assert response.status_code == 200
    body = response.json()
    assert body == ctx.policy.model_dump(mode="json")
    assert body["categories"]["sexual_abuse"]["max_retention_years"] == 10
