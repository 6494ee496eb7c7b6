"""Where runs are stored and signalled when several workers share them.

The Redis store lives in private modules that import ``coredis`` (the optional extra
``scopestream[redis]``); this package itself imports nothing optional, so ``import engine``
and ``import engine.backends`` work without it. Import the store from
``engine.backends._redis_store`` (and the follower fan-out from ``_redis_tailer``) only
where Redis is configured.
"""

from __future__ import annotations

from ._errors import StoreUnavailable as StoreUnavailable

__all__ = ["StoreUnavailable"]
