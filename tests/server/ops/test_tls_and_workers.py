"""`refcheck-server serve` as a real network runs it (docs/operations.md): over TLS with a
certificate of the network's own CA, behind a reverse proxy, and with several workers on a
fresh PostgreSQL database, each time through the real SDK."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from client_sdk import CheckStatus, Client, RetryPolicy, TransportError
from tests.server.ops.support import (
    BACKENDS,
    check_status,
    consent,
    deployment,
    person,
    register,
)

pytestmark = pytest.mark.slow


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A network CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test network CA"))
        .issuer_name(_name("Test network CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def test_serve_over_tls_with_hsts_and_the_sdk_trusting_the_networks_ca(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path / "tls")
    trust = ssl.create_default_context(cafile=str(ca))
    with deployment(tmp_path, "net", "sqlite", scheme="https") as net:
        net.init()
        with net.serve("--tls-cert", str(cert), "--tls-key", str(key), verify=trust):
            answer = httpx.get(net.base_url + "/healthz", verify=trust)
            assert answer.headers["strict-transport-security"] == "max-age=31536000"
            assert "server" not in answer.headers
            # Plain HTTP on the TLS port gets nothing.
            with pytest.raises(httpx.TransportError):
                httpx.get(net.base_url.replace("https:", "http:") + "/healthz", timeout=3)
            pins = tmp_path / "pins.json"
            with Client.from_credentials_file(
                net.credentials("org-a-focal"), pin_file=pins, ca_file=ca
            ) as focal:
                register(focal, person(3))
            with Client.from_credentials_file(
                net.credentials("org-b-hr"), pin_file=pins, ca_file=ca
            ) as hr:
                assert check_status(hr, person(3)) == CheckStatus.MATCH
            # Without the network's CA the certificate is not trusted, and nothing is sent.
            with Client.from_credentials_file(
                net.credentials("org-b-hr"),
                retry=RetryPolicy(max_attempts=1),
                pin_file=tmp_path / "p2.json",
            ) as untrusting:
                with pytest.raises(TransportError):
                    untrusting.oprf_key()


def test_serve_refuses_a_certificate_without_its_key_or_with_another_key(tmp_path: Path) -> None:
    _ca, cert, _key = make_certificates(tmp_path / "tls")
    _ca2, _cert2, other_key = make_certificates(tmp_path / "other")
    with deployment(tmp_path, "net", "sqlite") as net:
        net.init()
        alone = net.cli(
            "serve", "--data-dir", str(net.data_dir), "--tls-cert", str(cert), check=False
        )
        assert alone.returncode == 2 and "go together" in alone.stderr
        mismatched = net.cli(
            "serve",
            "--data-dir",
            str(net.data_dir),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(other_key),
            check=False,
        )
        assert mismatched.returncode == 2 and "cannot use the TLS certificate" in mismatched.stderr


def test_behind_a_proxy_forwarded_headers_count_only_when_asked_for(tmp_path: Path) -> None:
    """FastAPI's redirect of `/healthz/` names the scheme it believes the client used."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    with deployment(tmp_path, "net", "sqlite") as net:
        net.init()
        with net.serve():
            plain = httpx.get(net.base_url + "/healthz/", headers=forwarded)
            assert plain.status_code == 307
            assert plain.headers["location"].startswith("http://")
        with net.serve("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"):
            proxied = httpx.get(net.base_url + "/healthz/", headers=forwarded)
            assert proxied.headers["location"].startswith("https://")
        # A proxy not in the list is not believed.
        with net.serve("--proxy-headers", "--forwarded-allow-ips", "192.0.2.1"):
            stranger = httpx.get(net.base_url + "/healthz/", headers=forwarded)
            assert stranger.headers["location"].startswith("http://")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_on_a_fresh_database_run_the_story_and_concurrent_checks(
    tmp_path: Path, backend: str
) -> None:
    registered = [person(n) for n in range(4)]
    others = [person(n) for n in range(10, 14)]
    with deployment(tmp_path, "net", backend) as net:
        net.init()
        migrated = net.cli("migrate", "--data-dir", str(net.data_dir), *net.db_args())
        assert "current" in migrated.stderr
        with net.serve("--workers", "2") as proc:
            assert len(_children(proc.pid)) >= 2
            pins = tmp_path / "pins.json"
            with Client.from_credentials_file(
                net.credentials("org-a-focal"), pin_file=pins, max_concurrency=4
            ) as focal:
                cases = [register(focal, who) for who in registered]
            with Client.from_credentials_file(
                net.credentials("org-b-hr"), pin_file=pins, max_concurrency=4
            ) as hr:
                people = [*registered, *others]
                results = hr.check_many(people, [consent(hr) for _ in people])
                statuses = [r.status for r in results]
                assert statuses == [CheckStatus.MATCH] * 4 + [CheckStatus.NO_MATCH] * 4
                assert {m.case_id for r in results[:4] for m in r.matches} == set(cases)
                (match,) = results[0].by_case()
                request_id = hr.request_disclosure(match, applicant=registered[0])
            with Client.from_credentials_file(
                net.credentials("org-a-focal"), pin_file=pins
            ) as focal:
                inbox = focal.list_disclosures(role="holder")
                assert request_id in {d.id for d in inbox}
