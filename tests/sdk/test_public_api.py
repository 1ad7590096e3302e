"""`__all__` is the public API: every name in it exists and nothing public is left out."""

from __future__ import annotations

import client_sdk


def test_all_names_exist() -> None:
    for name in client_sdk.__all__:
        assert hasattr(client_sdk, name), name


def test_all_is_sorted_and_unique() -> None:
    assert len(set(client_sdk.__all__)) == len(client_sdk.__all__)
    assert client_sdk.__all__ == sorted(client_sdk.__all__, key=lambda n: (not n.isupper(), n))


def test_every_public_class_and_function_is_exported() -> None:
    public = {
        name
        for name, obj in vars(client_sdk).items()
        if not name.startswith("_") and (isinstance(obj, type) or callable(obj))
    }
    # Submodules are attributes of the package too; they are not API objects.
    assert public <= set(client_sdk.__all__), public - set(client_sdk.__all__)
