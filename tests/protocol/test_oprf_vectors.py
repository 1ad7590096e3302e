"""RFC 9497 test vectors (ristretto255-SHA512, modes 0, 1 and 2), loaded as data.

The file is vendored in `tests/protocol/vectors/` (copied from RFC 9497, Appendix A, as published
by the CFRG's voprf reference implementation; see the README there); set `REFCHECK_VECTORS` to a
file or directory to use another copy. Loading happens at collection, so a
missing file is an error, and `test_vector_file_holds_every_mode` fails if it is emptied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol.errors import VerifyError
from protocol.oprf import (
    MODE_OPRF,
    MODE_POPRF,
    MODE_VOPRF,
    SUITE,
    OPRFClient,
    OPRFServer,
    POPRFClient,
    POPRFServer,
    VOPRFClient,
    VOPRFServer,
    derive_key_pair,
)
from protocol.vectors import check_file, check_suites, main

pytestmark = pytest.mark.vectors

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VECTOR_FILE_NAME = "rfc9497-ristretto255-sha512.json"


def vector_path() -> Path:
    override = os.environ.get("REFCHECK_VECTORS")
    path = Path(override) if override else Path(__file__).resolve().parent / "vectors"
    return path / VECTOR_FILE_NAME if path.is_dir() else path


def _split(vector: dict[str, Any], key: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in vector[key].split(",")]


SUITES: list[dict[str, Any]] = [
    s for s in json.loads(vector_path().read_text(encoding="utf-8")) if s["identifier"] == SUITE
]
VECTORS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (suite, vector) for suite in SUITES for vector in suite["vectors"]
]
PROOF_VECTORS = [(s, v) for s, v in VECTORS if s["mode"] != MODE_OPRF]


def _vector_id(item: tuple[dict[str, Any], dict[str, Any]]) -> str:
    suite, vector = item
    index = suite["vectors"].index(vector) + 1
    return f"mode{suite['mode']}-vector{index}-batch{vector['Batch']}"


def _suite_id(suite: dict[str, Any]) -> str:
    return f"mode{suite['mode']}"


def test_vector_file_holds_every_mode() -> None:
    assert len(VECTORS) == 8
    assert {s["mode"] for s in SUITES} == {MODE_OPRF, MODE_VOPRF, MODE_POPRF}
    assert any(int(v["Batch"]) > 1 for _, v in VECTORS)


@pytest.mark.parametrize("suite", SUITES, ids=_suite_id)
def test_derive_key_pair_matches_vector(suite: dict[str, Any]) -> None:
    sk, pk = derive_key_pair(
        bytes.fromhex(suite["seed"]), bytes.fromhex(suite["keyInfo"]), suite["mode"]
    )
    assert sk.hex() == suite["skSm"]
    if "pkSm" in suite:
        assert pk.hex() == suite["pkSm"]


def _client(suite: dict[str, Any]) -> OPRFClient | VOPRFClient | POPRFClient:
    if suite["mode"] == MODE_OPRF:
        return OPRFClient()
    pk = bytes.fromhex(suite["pkSm"])
    return VOPRFClient(pk) if suite["mode"] == MODE_VOPRF else POPRFClient(pk)


@pytest.mark.parametrize("item", VECTORS, ids=[_vector_id(i) for i in VECTORS])
def test_blind_matches_vector(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    client = _client(suite)
    blinded = [
        client._blind_with(i, b)
        for i, b in zip(_split(vector, "Input"), _split(vector, "Blind"), strict=True)
    ]
    assert blinded == _split(vector, "BlindedElement")


@pytest.mark.parametrize("item", VECTORS, ids=[_vector_id(i) for i in VECTORS])
def test_blind_evaluate_matches_vector(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    sk = bytes.fromhex(suite["skSm"])
    blinded = _split(vector, "BlindedElement")
    if suite["mode"] == MODE_OPRF:
        server = OPRFServer(sk)
        evaluated = [server.blind_evaluate(e) for e in blinded]
    elif suite["mode"] == MODE_VOPRF:
        evaluated, _ = VOPRFServer(sk).blind_evaluate_batch(blinded)
    else:
        evaluated, _ = POPRFServer(sk).blind_evaluate_batch(blinded, bytes.fromhex(vector["Info"]))
    assert evaluated == _split(vector, "EvaluationElement")


@pytest.mark.parametrize("item", PROOF_VECTORS, ids=[_vector_id(i) for i in PROOF_VECTORS])
def test_generate_proof_matches_vector(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    sk = bytes.fromhex(suite["skSm"])
    blinded = _split(vector, "BlindedElement")
    r = bytes.fromhex(vector["Proof"]["r"])
    if suite["mode"] == MODE_VOPRF:
        _, proof = VOPRFServer(sk)._blind_evaluate_batch_with(blinded, r)
    else:
        info = bytes.fromhex(vector["Info"])
        _, proof = POPRFServer(sk)._blind_evaluate_batch_with(blinded, info, r)
    assert proof.hex() == vector["Proof"]["proof"]


@pytest.mark.parametrize("item", PROOF_VECTORS, ids=[_vector_id(i) for i in PROOF_VECTORS])
def test_verify_proof_accepts_vector_proof(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    pk = bytes.fromhex(suite["pkSm"])
    blinded = _split(vector, "BlindedElement")
    evaluated = _split(vector, "EvaluationElement")
    proof = bytes.fromhex(vector["Proof"]["proof"])
    if suite["mode"] == MODE_VOPRF:
        VOPRFClient(pk).verify_proof(blinded, evaluated, proof)
        with pytest.raises(VerifyError):
            VOPRFClient(pk).verify_proof(blinded, evaluated, proof[:63] + bytes([proof[63] ^ 1]))
    else:
        info = bytes.fromhex(vector["Info"])
        POPRFClient(pk).verify_proof(blinded, evaluated, proof, info)
        with pytest.raises(VerifyError):
            POPRFClient(pk).verify_proof(blinded, evaluated, proof, info + b"!")


@pytest.mark.parametrize("item", VECTORS, ids=[_vector_id(i) for i in VECTORS])
def test_finalize_matches_vector(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    inputs, blinds = _split(vector, "Input"), _split(vector, "Blind")
    evaluated, blinded = _split(vector, "EvaluationElement"), _split(vector, "BlindedElement")
    client = _client(suite)
    if isinstance(client, OPRFClient):
        outputs = client.finalize_batch(inputs, blinds, evaluated)
    elif isinstance(client, VOPRFClient):
        outputs = client.finalize_batch(
            inputs, blinds, evaluated, blinded, bytes.fromhex(vector["Proof"]["proof"])
        )
    else:
        outputs = client.finalize_batch(
            inputs,
            blinds,
            evaluated,
            blinded,
            bytes.fromhex(vector["Proof"]["proof"]),
            bytes.fromhex(vector["Info"]),
        )
    assert outputs == _split(vector, "Output")


@pytest.mark.parametrize("item", VECTORS, ids=[_vector_id(i) for i in VECTORS])
def test_evaluate_matches_vector(item: tuple[dict[str, Any], dict[str, Any]]) -> None:
    suite, vector = item
    sk = bytes.fromhex(suite["skSm"])
    inputs = _split(vector, "Input")
    if suite["mode"] == MODE_OPRF:
        outputs = [OPRFServer(sk).evaluate(i) for i in inputs]
    elif suite["mode"] == MODE_VOPRF:
        outputs = [VOPRFServer(sk).evaluate(i) for i in inputs]
    else:
        info = bytes.fromhex(vector["Info"])
        outputs = [POPRFServer(sk).evaluate(i, info) for i in inputs]
    assert outputs == _split(vector, "Output")


# --- the vector runner ----------------------------------------------------------------------


def test_vector_runner_passes_every_check_of_the_rfc_file() -> None:
    report = check_file(vector_path())
    assert report.failures == []
    # 3 key derivations + 4 checks per OPRF vector + 5 per VOPRF/POPRF vector.
    assert report.passed == 3 + 4 * 2 + 5 * 6
    assert report.ok


def test_vector_module_run_as_script_reports_no_failure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "protocol.vectors", str(vector_path())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "41 passed, 0 failed"


def test_vector_runner_reports_a_wrong_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = json.loads(vector_path().read_text(encoding="utf-8"))
    vector = suites[1]["vectors"][0]
    vector["Output"] = "00" + vector["Output"][2:]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(suites), encoding="utf-8")

    assert main([str(path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    # Finalize and Evaluate both disagree with the corrupted Output; nothing else fails.
    assert lines[-1] == "39 passed, 2 failed"
    assert all(line.startswith("mode 1 vector 1 ") for line in lines[:-1])


def test_vector_runner_reports_a_wrong_proof() -> None:
    suites = json.loads(vector_path().read_text(encoding="utf-8"))
    proof = suites[2]["vectors"][2]["Proof"]
    proof["proof"] = proof["proof"][:-2] + "07"
    report = check_suites(suites)
    assert not report.ok
    assert [f.split(":")[0] for f in report.failures] == [
        "mode 2 vector 3 generate_proof",
        "mode 2 vector 3 finalize",
    ]


def test_vector_runner_fails_without_vectors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    assert not check_file(empty).ok
    assert not check_file(tmp_path / "missing.json").ok
    assert main([str(empty)]) == 1
