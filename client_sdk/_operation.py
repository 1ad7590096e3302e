"""One definition of each SDK call for both clients.

An operation is written once, as a method that returns the core's `Op[T]` (a generator of
`ApiRequest`s, `client_sdk._core`), and decorated with `operation`. Read from a `Client` (a
`SyncDriver`) it is a plain method that runs the op through the client's blocking `_run` and
returns `T`; read from an `AsyncClient` (an `AsyncDriver`) it is an `async def` method that
awaits `_run`. Both carry the definition's name, docstring and signature (the return
annotation without `Op[...]`), so `help()`, `inspect.signature` and
`inspect.iscoroutinefunction` see the call as if it had been written out for each client, and
mypy types it `Callable[P, T]` on a `Client`, `Callable[P, Coroutine[..., T]]` on an
`AsyncClient`.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from client_sdk._core import Op

__all__ = ["AsyncDriver", "SyncDriver", "operation"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class SyncDriver:
    """A client whose calls block: `_run` sends an op's requests and returns its result."""

    if TYPE_CHECKING:

        def _run(self, op: Op[R]) -> R: ...


class AsyncDriver:
    """A client whose calls are awaited: `_run` is a coroutine."""

    if TYPE_CHECKING:

        def _run(self, op: Op[R]) -> Awaitable[R]: ...


def _result_annotation(annotation: Any) -> Any:
    """`Op[X]` (a string under `from __future__ import annotations`) becomes `X`."""
    if isinstance(annotation, str) and annotation.startswith("Op[") and annotation.endswith("]"):
        return annotation[3:-1]
    return annotation


class operation(Generic[P, T]):  # noqa: N801 - used as a decorator, like `property`
    """Decorate a method returning `Op[T]`: it becomes the call of both clients."""

    def __init__(self, make: Callable[Concatenate[Any, P], Op[T]]) -> None:
        self._make = make
        signature = inspect.signature(make)
        signature = signature.replace(
            return_annotation=_result_annotation(signature.return_annotation)
        )

        def run(client: Any, /, *args: Any, **kwargs: Any) -> Any:
            return client._run(make(client, *args, **kwargs))

        async def run_async(client: Any, /, *args: Any, **kwargs: Any) -> Any:
            return await client._run(make(client, *args, **kwargs))

        for made in (run, run_async):
            functools.update_wrapper(made, make)
            # The signature is the definition's with the op's result as its return annotation
            # (`inspect.signature` would otherwise follow `__wrapped__` to `Op[...]`).
            delattr(made, "__wrapped__")
            setattr(made, "__signature__", signature)  # noqa: B010
        self._sync: Callable[..., Any] = run
        self._async: Callable[..., Any] = run_async
        self.__doc__ = make.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Callable[..., Any]: ...

    @overload
    def __get__(
        self, instance: AsyncDriver, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __get__(self, instance: SyncDriver, owner: type[Any]) -> Callable[P, T]: ...

    def __get__(self, instance: object, owner: type[Any]) -> Callable[..., Any]:
        function = self._async if issubclass(owner, AsyncDriver) else self._sync
        return function if instance is None else types.MethodType(function, instance)
