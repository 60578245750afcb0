"""How ``MLContext``'s catalogs build components: from their constructors, never restating them.

A catalog lists its components as ``name = entry(SomeEstimator)``: ``ctx.transforms.name(...)``
then takes exactly ``SomeEstimator``'s parameters (typed through ``ParamSpec``, so IDEs complete
them, and ``help()`` shows the constructor's signature and the class's docstring). The entry only
fills in the context's defaults: a ``seed``, ``gpu_device_id`` or ``fallback_to_cpu`` parameter
whose default is None, left out (or None), takes the context's value. A parameter of that name with
another default is the component's own (a hash seed, ML.NET's 314489979) and is left alone.

A component registered with ``@component(name, catalog="transforms")`` but not listed (a user's
own, or one added since) is found too, through :meth:`Catalog.__getattr__`, untyped; so is a
catalog only registered components name (``catalog="transforms.text"`` makes ``ctx.transforms.text``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from onnxpipe.core import Component, registered_components

if TYPE_CHECKING:
    from onnxpipe.context import MLContext

__all__ = ["CONTEXT_DEFAULTS", "Catalog", "entry"]

P = ParamSpec("P")
R = TypeVar("R")

CONTEXT_DEFAULTS = ("seed", "gpu_device_id", "fallback_to_cpu")
"""Constructor parameters that default to the context's attribute of the same name."""


def _bind(cls: Callable[..., R], ctx: MLContext, name: str) -> Callable[..., R]:
    signature = inspect.signature(cls)
    defaults = [n for n in CONTEXT_DEFAULTS if n in signature.parameters and signature.parameters[n].default is None]

    def build(*args: Any, **kwargs: Any) -> R:
        if defaults:
            bound = signature.bind_partial(*args, **kwargs)
            for parameter in defaults:
                if bound.arguments.get(parameter) is None and getattr(ctx, parameter, None) is not None:
                    bound.arguments[parameter] = getattr(ctx, parameter)
            args, kwargs = bound.args, bound.kwargs
        return cls(*args, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = cls.__doc__
    build.__signature__ = signature  # type: ignore[attr-defined]  # what help() and IDEs show
    build.__module__ = cls.__module__
    return build


class entry(Generic[P, R]):  # noqa: N801 - used like a function in class bodies
    """A catalog method that builds ``factory`` (a component class) with its own parameters."""

    def __init__(self, factory: Callable[P, R]) -> None:
        self.factory = factory
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, catalog: None, owner: type) -> entry[P, R]: ...
    @overload
    def __get__(self, catalog: Catalog, owner: type) -> Callable[P, R]: ...
    def __get__(self, catalog: Catalog | None, owner: type) -> entry[P, R] | Callable[P, R]:
        if catalog is None:
            return self
        return _bind(self.factory, catalog._ctx, self.name)


class Catalog:
    """A group of catalog methods; ``path`` is where it hangs from the context (``"transforms"``)."""

    path: str = ""  # a class attribute of the written catalogs; an instance one of found ones

    def __init__(self, ctx: MLContext, path: str | None = None) -> None:
        self._ctx = ctx
        if path is not None:  # a catalog that only registrations name, e.g. ctx.transforms.text
            self.path = path

    def _registered(self) -> dict[str, type[Component]]:
        """Registered components this catalog builds, by catalog name."""
        return {
            info.cls.catalog_name: info.cls for info in registered_components().values() if info.catalog == self.path
        }

    def _sub_catalogs(self) -> set[str]:
        """Names of catalogs below this one that only registered components define."""
        prefix = self.path + "."
        return {
            info.catalog[len(prefix) :].split(".")[0]
            for info in registered_components().values()
            if info.catalog is not None and info.catalog.startswith(prefix)
        }

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        found = self._registered().get(name)
        if found is not None:
            return _bind(found, self._ctx, name)
        if name in self._sub_catalogs():  # e.g. ctx.transforms.text, from its components' registrations
            return Catalog(self._ctx, f"{self.path}.{name}")
        known = sorted({n for n in dir(self) if not n.startswith("_")})
        raise AttributeError(f"ctx.{self.path} has no {name!r}; it has {', '.join(known)}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._registered(), *self._sub_catalogs()})
