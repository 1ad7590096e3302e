"""Check `protocol.oprf` against RFC 9497 test vectors (ristretto255-SHA512, all three modes).

    python -m protocol.vectors PATH

PATH is a JSON file in the layout of the RFC's published vectors (a list of suites, each with
`mode`, `seed`, `keyInfo`, `skSm`, `pkSm`, `vectors`; batch fields comma-separated). Prints one
line per failed check and, last, exactly `N passed, N failed`; exits non-zero if anything failed
or no vector was found, so a missing or emptied file cannot pass.

Every check takes its inputs from the vector, not from an earlier check, so one wrong step is
reported once instead of failing everything after it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ProtocolError
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

__all__ = ["VectorReport", "check_file", "check_suites", "main"]


@dataclass
class VectorReport:
    """Outcome of a vector run: how many checks passed, and one line per failure."""

    passed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """True only if something was checked and nothing failed."""
        return self.passed > 0 and not self.failures

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"

    def _run(self, label: str, check: Callable[[], str | None]) -> None:
        # A check returns None when it passes and a description of the mismatch otherwise; an
        # exception (bad data, a proof our code refuses) is a failure of that check alone.
        try:
            problem = check()
        except (ProtocolError, KeyError, ValueError, TypeError, IndexError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            self.passed += 1
        else:
            self.failures.append(f"{label}: {problem}")


def _hexes(vector: dict[str, Any], key: str, batch: int) -> list[bytes]:
    values = [bytes.fromhex(x) for x in str(vector[key]).split(",")]
    if len(values) != batch:
        raise ValueError(f"{key} has {len(values)} values for batch {batch}")
    return values


def _expect(name: str, expected: Sequence[bytes], got: Sequence[bytes]) -> str | None:
    if list(expected) == list(got):
        return None
    want = ",".join(e.hex() for e in expected)
    have = ",".join(g.hex() for g in got)
    return f"{name} expected {want} got {have}"


def _check_key_pair(suite: dict[str, Any]) -> str | None:
    sk, pk = derive_key_pair(
        bytes.fromhex(suite["seed"]), bytes.fromhex(suite["keyInfo"]), suite["mode"]
    )
    if sk.hex() != suite["skSm"]:
        return f"skSm expected {suite['skSm']} got {sk.hex()}"
    if "pkSm" in suite and pk.hex() != suite["pkSm"]:
        return f"pkSm expected {suite['pkSm']} got {pk.hex()}"
    return None


def _check_vector(
    report: VectorReport, label: str, mode: int, sk: bytes, v: dict[str, Any]
) -> None:
    batch = int(v["Batch"])
    inputs = _hexes(v, "Input", batch)
    blinds = _hexes(v, "Blind", batch)
    blinded = _hexes(v, "BlindedElement", batch)
    evaluated = _hexes(v, "EvaluationElement", batch)
    outputs = _hexes(v, "Output", batch)
    info = bytes.fromhex(v["Info"]) if mode == MODE_POPRF else b""
    proof = bytes.fromhex(v["Proof"]["proof"]) if mode != MODE_OPRF else b""
    r = bytes.fromhex(v["Proof"]["r"]) if mode != MODE_OPRF else b""

    if mode == MODE_OPRF:
        oprf_client, oprf_server = OPRFClient(), OPRFServer(sk)
        report._run(
            f"{label} blind",
            lambda: _expect(
                "BlindedElement",
                blinded,
                [oprf_client._blind_with(i, b) for i, b in zip(inputs, blinds, strict=True)],
            ),
        )
        report._run(
            f"{label} blind_evaluate",
            lambda: _expect(
                "EvaluationElement", evaluated, [oprf_server.blind_evaluate(e) for e in blinded]
            ),
        )
        report._run(
            f"{label} finalize",
            lambda: _expect(
                "Output", outputs, oprf_client.finalize_batch(inputs, blinds, evaluated)
            ),
        )
        report._run(
            f"{label} evaluate",
            lambda: _expect("Output", outputs, [oprf_server.evaluate(i) for i in inputs]),
        )
    elif mode == MODE_VOPRF:
        v_server = VOPRFServer(sk)
        v_client = VOPRFClient(v_server.public_key)
        report._run(
            f"{label} blind",
            lambda: _expect(
                "BlindedElement",
                blinded,
                [v_client._blind_with(i, b) for i, b in zip(inputs, blinds, strict=True)],
            ),
        )
        report._run(
            f"{label} blind_evaluate",
            lambda: _expect(
                "EvaluationElement", evaluated, v_server._blind_evaluate_batch_with(blinded, r)[0]
            ),
        )
        report._run(
            f"{label} generate_proof",
            lambda: _expect("Proof", [proof], [v_server._blind_evaluate_batch_with(blinded, r)[1]]),
        )
        report._run(
            f"{label} finalize",
            lambda: _expect(
                "Output",
                outputs,
                v_client.finalize_batch(inputs, blinds, evaluated, blinded, proof),
            ),
        )
        report._run(
            f"{label} evaluate",
            lambda: _expect("Output", outputs, [v_server.evaluate(i) for i in inputs]),
        )
    else:
        p_server = POPRFServer(sk)
        p_client = POPRFClient(p_server.public_key)
        report._run(
            f"{label} blind",
            lambda: _expect(
                "BlindedElement",
                blinded,
                [p_client._blind_with(i, b) for i, b in zip(inputs, blinds, strict=True)],
            ),
        )
        report._run(
            f"{label} blind_evaluate",
            lambda: _expect(
                "EvaluationElement",
                evaluated,
                p_server._blind_evaluate_batch_with(blinded, info, r)[0],
            ),
        )
        report._run(
            f"{label} generate_proof",
            lambda: _expect(
                "Proof", [proof], [p_server._blind_evaluate_batch_with(blinded, info, r)[1]]
            ),
        )
        report._run(
            f"{label} finalize",
            lambda: _expect(
                "Output",
                outputs,
                p_client.finalize_batch(inputs, blinds, evaluated, blinded, proof, info),
            ),
        )
        report._run(
            f"{label} evaluate",
            lambda: _expect("Output", outputs, [p_server.evaluate(i, info) for i in inputs]),
        )


def check_suites(suites: Any) -> VectorReport:
    """Check every ristretto255-SHA512 suite in parsed vector data; other suites are ignored."""
    report = VectorReport()
    if not isinstance(suites, list):
        report.failures.append("vector data is not a list of suites")
        return report
    found = 0
    for n, suite in enumerate(suites):
        if not isinstance(suite, dict) or suite.get("identifier") != SUITE:
            continue
        mode = suite.get("mode")
        if mode not in (MODE_OPRF, MODE_VOPRF, MODE_POPRF):
            report.failures.append(f"suite {n}: unknown mode {mode!r}")
            continue
        label = f"mode {mode}"
        report._run(f"{label} derive_key_pair", functools.partial(_check_key_pair, suite))
        try:
            sk = bytes.fromhex(suite["skSm"])
            vectors = list(suite["vectors"])
        except (KeyError, ValueError, TypeError) as exc:
            report.failures.append(f"{label}: malformed suite ({type(exc).__name__}: {exc})")
            continue
        for i, vector in enumerate(vectors, start=1):
            found += 1
            try:
                _check_vector(report, f"{label} vector {i}", mode, sk, vector)
            except (ProtocolError, KeyError, ValueError, TypeError) as exc:
                report.failures.append(
                    f"{label} vector {i}: malformed vector ({type(exc).__name__}: {exc})"
                )
    if found == 0:
        report.failures.append(f"no {SUITE} vectors found")
    return report


def check_file(path: Path | str) -> VectorReport:
    """Load a vector file and check it; an unreadable file is one failure."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        report = VectorReport()
        report.failures.append(f"cannot read {path}: {type(exc).__name__}: {exc}")
        return report
    return check_suites(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protocol.vectors", description="Check RFC 9497 ristretto255-SHA512 vectors."
    )
    parser.add_argument("path", type=Path, help="JSON vector file")
    args = parser.parse_args(argv)
    report = check_file(args.path)
    for line in report.failures:
        print(line)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
