"""The store's own exception, importable without any optional dependency.

::

    ScopestreamError
    └── StoreUnavailable   the shared store (Redis) cannot be reached: fail the run or
                           answer 503, and try again later
"""

from __future__ import annotations

from .._errors import ScopestreamError

__all__ = ["StoreUnavailable"]


class StoreUnavailable(ScopestreamError):
    """The store did not answer (refused, reset, timed out). The message names the
    setting to check; the underlying client error is chained as ``__cause__``."""
