"""Trust on first use of the OPRF key, and refusal of an unannounced change."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_sdk import KeyChanged, PinnedKey
from client_sdk.pinning import KeyPin

K1 = PinnedKey("aaaaaaaaaaaaaaaa", b"\x01" * 32)
K2 = PinnedKey("bbbbbbbbbbbbbbbb", b"\x02" * 32)


def test_first_key_is_pinned_and_the_same_key_accepted_again() -> None:
    pin = KeyPin("http://s")
    assert pin.check(K1) == K1
    assert pin.check(K1) == K1


def test_a_different_key_raises_key_changed() -> None:
    pin = KeyPin("http://s", pinned=K1)
    with pytest.raises(KeyChanged) as info:
        pin.check(K2)
    assert info.value.pinned_key_id == K1.key_id and info.value.server_key_id == K2.key_id


def test_same_key_id_with_other_public_key_is_refused() -> None:
    pin = KeyPin("http://s", pinned=K1)
    with pytest.raises(KeyChanged):
        pin.check(PinnedKey(K1.key_id, b"\x03" * 32))


def test_pin_file_survives_the_process_and_is_per_server(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    KeyPin("http://a", path=path).check(K1)
    KeyPin("http://b", path=path).check(K2)
    with pytest.raises(KeyChanged):
        KeyPin("http://a", path=path).check(K2)
    assert KeyPin("http://b", path=path).check(K2) == K2
    assert path.stat().st_mode & 0o777 == 0o600
