"""Process-wide settings bayesmoe wants, set only when asked: ``import bayesmoe`` changes nothing.

- :func:`configure` turns on JAX's float64 arithmetic and its on-disk compilation cache for the whole
  process. The ``bayesmoe`` command calls it; a program that fits many tables may call it once.
- :func:`float64` is the decorator that every public function computing with JAX runs
  in, so results are float64 whether or not :func:`configure` was called, and the caller's
  ``jax_enable_x64`` is restored afterwards.

The compilation cache keeps compiled samplers on disk (they depend only on the model and the data's
shapes), so a repeat fit of a table of the same size skips XLA compilation. ``BAYESMOE_JAX_CACHE``
overrides its folder (default ``~/.cache/bayesmoe/jax``); an empty value turns it off.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

import jax

F = TypeVar("F", bound=Callable)


def default_cache_dir() -> str:
    """The compilation-cache folder: ``$BAYESMOE_JAX_CACHE``, else ``~/.cache/bayesmoe/jax`` ("" = off)."""
    return os.environ.get("BAYESMOE_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bayesmoe", "jax"))


def configure(*, x64: bool = True, compilation_cache: str | None = None) -> None:
    """Set JAX's process-wide options for bayesmoe.

    Args:
        x64: turn on float64 arithmetic (``jax_enable_x64``) for the whole process.
        compilation_cache: folder of JAX's persistent compilation cache; None = :func:`default_cache_dir`,
            "" = leave the cache off. A folder already set by the caller is kept.
    """
    if x64:
        jax.config.update("jax_enable_x64", True)
    folder = default_cache_dir() if compilation_cache is None else compilation_cache
    if folder and jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def float64(function: F) -> F:
    """Decorator: run ``function`` with JAX's float64 arithmetic on, restoring the caller's setting after."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
