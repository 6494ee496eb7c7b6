"""The Redis store: runs that any worker can read, follow, cancel and answer.

Theory of operation
-------------------
One worker *owns* each run: it executes the producer's scope tree and is the only writer
of the run's log. Other workers read the record and the log, and *signal* the owner.
Every decision about a run is one Lua script over that run's keys (see
``_redis_scripts``), so two workers can never both decide:

- ``append`` writes events ``seq..seq+n-1`` only while the run is live, only for the worker
  named in the record, and only at ``last_seq + 1``. Stream entry ids are ``<seq>-0``, so
  ``XADD`` itself also refuses an id not above the top: a second writer is fenced out and
  a gap can always be seen from the ids.
- ``finish`` compares-and-sets the status to a terminal one, appends the terminal entry at
  the next seq, stores the outcome and sets the retention expiry on every key of the run,
  in one step. The first ``finish`` wins; a late owner or a sweeper changes nothing.
- ``answer`` / ``expire_interaction`` compare-and-set one interaction, so an answer and
  the owner's timeout cannot both win; ``cancel`` records the reason durably and then
  publishes it to the owner's control channel.

Keys (``P`` is the configured prefix, ``{r}`` the run id as a Redis Cluster hash tag)::

    P:{r}:rec      HASH    the record: status, owner, worker, last_seq, outcome, ...
    P:{r}:log      STREAM  the events, entry id <seq>-0, fields t (type) and d (JSON)
    P:{r}:cancel   STRING  the first cancel reason requested
    P:{r}:ia       HASH    interaction id -> pending|answered|expired|cleared, and
                           <id>:response -> the answer's JSON
    P:{alias:h}:id       STRING  owner + client_run_id -> run id (h: a digest of both)
    P:{alias:h}:cancel   STRING  a cancel for a client_run_id not created yet
    P:{recent:o}:ids     ZSET    an owner's newest runs by creation time (o: a digest of
                                 the owner), for listing them from any worker
    P:live               HASH    live run id -> owning worker (for the sweeper)
    P:worker:{w}:hb      STRING  worker w's heartbeat, expiring after the heartbeat TTL
    P:tailer:{w}:wake    STREAM  one entry, written to wake worker w's blocked XREAD
    P:ctl:<w>            pub/sub channel of worker w (cancel and answer signals)

Everything expires: a key gets its expiry in the same step that writes it (``PEXPIRE`` on
a missing key does nothing). A live run's keys carry the *live TTL*, renewed by every
append and every heartbeat, far above the heartbeat TTL, so they cannot expire mid-run
(a run paused for input writes nothing for minutes); ``finish`` replaces it with the
retention. The live index is the one exception: its entries are removed when the run
finishes (by whoever finishes it, or by the next sweep if that worker died in between).

Cross-run keys cannot join a run's script on Redis Cluster (they live on other slots),
so the steps around them are ordered to heal: a run enters the live index before its
record exists, and the sweeper removes entries whose run has ended or never appeared.

The client is one ``coredis.Redis`` entered for the store's lifetime in the task that
opens it (:func:`open_redis_store`), as coredis requires. Any connection failure comes
out of every method as :class:`~engine.backends.StoreUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, cast

import coredis
import coredis.exceptions

from .._errors import InteractionNotFound, InteractionNotPending, RunConflict, RunNotFound
from .._events import TERMINAL_TYPES, CancelReason, EventType, Outcome, RunStatus
from . import _redis_scripts as scripts
from ._errors import StoreUnavailable
from ._redis_model import AppendResult as AppendResult
from ._redis_model import CreatedRun as CreatedRun
from ._redis_model import FinishResult as FinishResult
from ._redis_model import ReadResult as ReadResult
from ._redis_model import RedisStoreConfig as RedisStoreConfig
from ._redis_model import RunRecord as RunRecord
from ._redis_model import (
    dumps,
    event_from_entry,
    owner_value,
    record_from_hash,
    safe_url,
    valid_id,
)

__all__ = [
    "AppendResult",
    "CreatedRun",
    "FinishResult",
    "ReadResult",
    "RedisStore",
    "RedisStoreConfig",
    "RunRecord",
    "open_redis_store",
    "probe_redis",
]

URL_SETTING = "SCOPESTREAM_REDIS_URL"
#: How many runs an owner's recent-runs index keeps (the list route shows at most 100).
RECENT_RUNS_KEPT = 1000
# Failures that mean "Redis did not answer"; the builtin TimeoutError is an OSError.
_UNREACHABLE = (coredis.exceptions.ConnectionError, OSError)


class RedisStore:
    """One worker's handle on the shared store. Create with :func:`open_redis_store`.

    Holds, besides the client, the set of runs this worker owns (created here and not yet
    finished), which its heartbeat keeps alive.
    """

    def __init__(
        self,
        client: coredis.Redis[str],
        config: RedisStoreConfig,
        worker_id: str,
        where: str,
    ) -> None:
        if not valid_id(worker_id) or " " in worker_id:
            raise ValueError(f"invalid worker id {worker_id!r}")
        self.client = client
        self.config = config
        self.worker_id = worker_id
        self._where = where
        p = config.prefix
        self.live_key = f"{p}:live"
        self.control_prefix = f"{p}:ctl:"
        self._owned: dict[str, str | None] = {}  # run id -> its alias key, if any
        register = client.register_script
        self._create = register(scripts.CREATE)
        self._append = register(scripts.APPEND)
        self._finish = register(scripts.FINISH)
        self._answer = register(scripts.ANSWER)
        self._expire_interaction = register(scripts.EXPIRE_INTERACTION)
        self._cancel = register(scripts.CANCEL)
        self._touch = register(scripts.TOUCH)
        self._claim_alias = register(scripts.CLAIM_ALIAS)
        self._remember_cancel = register(scripts.REMEMBER_CANCEL)
        self._expire_alias = register(scripts.EXPIRE_ALIAS)
        self._record_recent = register(scripts.RECORD_RECENT)

    # -- keys ---------------------------------------------------------------------------

    def run_keys(self, run_id: str) -> list[str]:
        return [f"{self.config.prefix}:{{{run_id}}}:{suffix}" for suffix in scripts.RUN_KEYS]

    def log_key(self, run_id: str) -> str:
        return self.run_keys(run_id)[1]

    def heartbeat_key(self, worker_id: str) -> str:
        return f"{self.config.prefix}:worker:{{{worker_id}}}:hb"

    def alias_keys(self, owner: str | None, client_run_id: str) -> list[str]:
        # A digest keeps any client_run_id (braces, colons, length) out of the key syntax.
        digest = hashlib.sha256(dumps([owner, client_run_id]).encode()).hexdigest()[:32]
        return [f"{self.config.prefix}:{{alias:{digest}}}:{s}" for s in ("id", "cancel")]

    def recent_key(self, owner: str | None) -> str:
        digest = hashlib.sha256(owner_value(owner).encode()).hexdigest()[:32]
        return f"{self.config.prefix}:{{recent:{digest}}}:ids"

    def control_channel(self, worker_id: str) -> str:
        return self.control_prefix + worker_id

    @property
    def owned(self) -> list[str]:
        """Ids of the live runs this worker created and has not seen finish."""
        return list(self._owned)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn "Redis did not answer" into :class:`StoreUnavailable`."""
        try:
            yield
        except _UNREACHABLE as exc:
            raise StoreUnavailable(
                f"Redis at {self._where} did not answer (check {URL_SETTING})"
            ) from exc

    async def _script(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> list[str]:
        with self.guard():
            return cast(list[str], await script(keys, [str(a) for a in args]))

    def _ms(self, seconds: float) -> int:
        return max(1, round(seconds * 1000))

    # -- startup ------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raises :class:`StoreUnavailable` (naming ``SCOPESTREAM_REDIS_URL``) unless Redis
        answers."""
        with self.guard():
            await self.client.ping()

    # -- creating and writing (the owner) -----------------------------------------------

    async def create_run(
        self,
        run_id: str,
        *,
        producer: str,
        owner: str | None = None,
        client_run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CreatedRun:
        """Record a new run (status ``queued``) owned by this worker.

        Raises :class:`RunConflict` when a live run of this owner already uses
        ``client_run_id``. A cancel remembered for that ``client_run_id`` comes back as
        ``cancel_reason``.
        """
        if not valid_id(run_id):
            raise ValueError(f"invalid run id {run_id!r}")
        owner_field = owner_value(owner)
        alias_key = None
        if client_run_id is not None:
            alias_key = await self._claim(run_id, owner, client_run_id)
        # The live index first: if this worker dies before the record exists, the sweeper
        # finds the entry, sees no run, and removes it.
        with self.guard():
            await self.client.hset(self.live_key, {run_id: self.worker_id})
        fields: dict[str, str] = {
            "id": run_id,
            "owner": owner_field,
            "producer": producer,
            "status": str(RunStatus.QUEUED),
            "worker": self.worker_id,
            "client_run_id": client_run_id or "",
            "created_at": repr(time.time()),
            "last_seq": "0",
            "metadata": dumps(dict(metadata or {})),
        }
        pairs = [item for kv in fields.items() for item in kv]
        result = await self._script(
            self._create, self.run_keys(run_id), [self._ms(self.config.live_ttl), *pairs]
        )
        if result[0] == "exists":
            raise RunConflict(f"run {run_id} already exists")
        self._owned[run_id] = alias_key
        # The index outlives its newest run's keys: a live TTL plus the retention.
        ttl = self._ms(self.config.live_ttl + self.config.retention)
        await self._script(
            self._record_recent,
            [self.recent_key(owner)],
            [run_id, fields["created_at"], RECENT_RUNS_KEPT, ttl],
        )
        return CreatedRun(run_id, CancelReason(result[1]) if result[1] else None)

    async def recent_run_ids(self, owner: str | None, count: int) -> list[str]:
        """The ids of this owner's ``count`` most recently created runs, newest first. Some
        may have expired since: their records are gone."""
        with self.guard():
            ids = await self.client.zrange(self.recent_key(owner), 0, count - 1, rev=True)
        return [str(run_id) for run_id in ids]

    async def _claim(self, run_id: str, owner: str | None, client_run_id: str) -> str:
        alias_key, cancel_key = self.alias_keys(owner, client_run_id)
        replaceable = ""
        for _ in range(3):
            result = await self._script(
                self._claim_alias,
                [alias_key, cancel_key],
                [run_id, self._ms(self.config.live_ttl), replaceable],
            )
            if result[0] == "ok":
                if result[1]:
                    # Move the remembered cancel onto the run, where CREATE finds it.
                    await self._script(
                        self._cancel,
                        self.run_keys(run_id),
                        [
                            owner_value(owner),
                            result[1],
                            run_id,
                            self.control_prefix,
                            self._ms(self.config.live_ttl),
                            "1",
                        ],
                    )
                return alias_key
            holder = result[1]
            record = await self.get_record(holder)
            if record is not None and not record.status.terminal:
                raise RunConflict(f"a live run already uses client_run_id {client_run_id!r}")
            # The holder ended (or never came to exist): it may be replaced, but only if the
            # alias still names it, so two creators cannot both take it.
            replaceable = holder
        raise RunConflict(f"client_run_id {client_run_id!r} is being claimed concurrently")

    async def append(
        self,
        run_id: str,
        first_seq: int,
        events: Sequence[tuple[EventType, Mapping[str, Any]]],
        *,
        status: RunStatus | None = None,
        interaction: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append ``events`` as ``first_seq, first_seq + 1, ...`` and optionally move the
        status (``running``, or ``awaiting_input`` with the ``interaction`` announced,
        which must carry its ``interaction_id``). Terminal events go through
        :meth:`finish`, never here."""
        if status is not None and status.terminal:
            raise ValueError("a terminal status is written only by finish()")
        if any(type in TERMINAL_TYPES for type, _ in events):
            raise ValueError("terminal events are written only by finish()")
        if (status is RunStatus.AWAITING_INPUT) != (interaction is not None):
            raise ValueError("awaiting_input and an interaction go together")
        interaction_id = str(interaction["interaction_id"]) if interaction else ""
        args: list[Any] = [
            self.worker_id,
            first_seq,
            self.config.max_log_events,
            self._ms(self.config.live_ttl),
            str(status) if status is not None else "",
            repr(time.time()),
            interaction_id,
            dumps(dict(interaction)) if interaction else "",
        ]
        for type, data in events:
            args += [str(type), dumps(dict(data))]
        result = await self._script(self._append, self.run_keys(run_id), args)
        last = int(result[1]) if len(result) > 1 else 0
        return AppendResult(cast(Any, result[0]), last)

    async def finish(
        self,
        run_id: str,
        outcome: Outcome,
        *,
        expected_worker: str | None = None,
        answer: Mapping[str, Any] | None = None,
    ) -> FinishResult:
        """Write the run's one terminal: status, terminal event, outcome and the final
        ``answer`` view, and the retention expiry on every key of the run, atomically.

        ``expected_worker`` (default: this worker) must be the run's worker, or nothing
        changes; the sweeper passes the dead worker's id. Whatever the verdict, the run
        leaves the live index and this worker's owned runs: it is no longer live.
        """
        worker = self.worker_id if expected_worker is None else expected_worker
        result = await self._script(
            self._finish,
            self.run_keys(run_id),
            [
                worker,
                str(outcome.status),
                str(outcome.event_type),
                dumps(outcome.as_dict()),
                dumps(dict(answer)) if answer is not None else "",
                repr(time.time()),
                self.config.max_log_events,
                self._ms(self.config.retention),
            ],
        )
        verdict = result[0]
        alias_key = self._owned.pop(run_id, None) if worker == self.worker_id else None
        if verdict != "fenced":
            with self.guard():
                await self.client.hdel(self.live_key, [run_id])
            if verdict == "won":
                owner, client_run_id = result[2] or None, result[3]
                if client_run_id:
                    alias_key = alias_key or self.alias_keys(owner, client_run_id)[0]
                if alias_key is not None:
                    await self._script(
                        self._expire_alias,
                        [alias_key],
                        [run_id, self._ms(self.config.retention)],
                    )
        if verdict == "won":
            return FinishResult("won", int(result[1]), outcome.status)
        if verdict in ("already_finished", "fenced"):
            return FinishResult(cast(Any, verdict), int(result[2]), RunStatus(result[1]))
        return FinishResult("not_found")

    async def expire_interaction(self, run_id: str, interaction_id: str) -> tuple[str, Any]:
        """The owner's timeout for a pending interaction: ``("expired", None)`` if it was
        still pending, ``("answered", response)`` if the answer won the race, or the state
        it had (``cleared``, ``expired``, ``not_found``, ``fenced``) and ``None``."""
        result = await self._script(
            self._expire_interaction, self.run_keys(run_id), [self.worker_id, interaction_id]
        )
        if result[0] == "answered":
            return "answered", json.loads(result[1])
        return result[0], None

    async def interaction_state(self, run_id: str, interaction_id: str) -> tuple[str, Any]:
        """``(state, response)`` of one interaction; the owner reads an answer with this
        when told of it. ``("not_found", None)`` if the run never issued it."""
        ia_key = self.run_keys(run_id)[3]
        with self.guard():
            state, response = await self.client.hmget(
                ia_key, [interaction_id, f"{interaction_id}:response"]
            )
        if state is None:
            return "not_found", None
        return state, json.loads(response) if response is not None else None

    # -- signalling (any worker) --------------------------------------------------------

    async def cancel(
        self,
        run_id: str,
        reason: CancelReason = CancelReason.REQUESTED,
        *,
        owner: str | None = None,
    ) -> Literal["requested", "already_decided", "not_found"]:
        """Ask the run's owner to cancel it: the reason is stored (the first one wins) and
        published to the owner's control channel. The owner decides the outcome."""
        if not valid_id(run_id):
            return "not_found"
        result = await self._script(
            self._cancel,
            self.run_keys(run_id),
            [
                owner_value(owner),
                str(reason),
                run_id,
                self.control_prefix,
                self._ms(self.config.live_ttl),
                "",
            ],
        )
        return cast(Literal["requested", "already_decided", "not_found"], result[0])

    async def cancel_client_run_id(
        self,
        client_run_id: str,
        reason: CancelReason = CancelReason.REQUESTED,
        *,
        owner: str | None = None,
    ) -> tuple[Literal["requested", "already_decided", "remembered"], str | None]:
        """Cancel by ``client_run_id``: the run it names, or, if no run was created with it
        yet, remember the cancel for ``pending_cancel_ttl`` so that the run starts
        cancelled on whichever worker creates it. Returns the verdict and the run id."""
        alias_key, cancel_key = self.alias_keys(owner, client_run_id)
        result = await self._script(
            self._remember_cancel,
            [alias_key, cancel_key],
            [str(reason), self._ms(self.config.pending_cancel_ttl)],
        )
        if result[0] == "remembered":
            return "remembered", None
        run_id = result[1]
        # The alias exists, so the record exists or is being created right now: a missing
        # record keeps the cancel on the run's key, where its CREATE finds it.
        verdict = await self._script(
            self._cancel,
            self.run_keys(run_id),
            [
                owner_value(owner),
                str(reason),
                run_id,
                self.control_prefix,
                self._ms(self.config.live_ttl),
                "1",
            ],
        )
        if verdict[0] == "remembered":
            return "requested", run_id
        return cast(Any, verdict[0]), run_id

    async def answer(
        self, run_id: str, interaction_id: str, response: Any, *, owner: str | None = None
    ) -> None:
        """Answer a pending interaction from any worker; the owner is told at once.

        Raises :class:`RunNotFound`, :class:`InteractionNotFound`, or
        :class:`InteractionNotPending` (answered, expired, or cleared by the run's end).
        """
        if not valid_id(run_id):
            raise RunNotFound(run_id)
        result = await self._script(
            self._answer,
            self.run_keys(run_id),
            [owner_value(owner), interaction_id, dumps(response), self.control_prefix, run_id],
        )
        if result[0] == "no_run":
            raise RunNotFound(run_id)
        if result[0] == "not_found":
            raise InteractionNotFound(interaction_id)
        if result[0] == "not_pending":
            raise InteractionNotPending(f"interaction {interaction_id} is {result[1]}")

    # -- reading (any worker) -----------------------------------------------------------

    async def read(self, run_id: str, after: int, count: int | None = None) -> ReadResult:
        """Up to ``count`` events after seq ``after``. XRANGE silently starts at the oldest
        entry left, so a trimmed cursor is detected from the first id returned."""
        if not valid_id(run_id):
            return ReadResult(0, [])
        with self.guard():
            entries = await self.client.xrange(
                self.log_key(run_id), f"{after + 1}-0", "+", count=count
            )
        events = [event_from_entry(run_id, entry) for entry in entries]
        missing_from = after + 1 if events and events[0].seq > after + 1 else 0
        return ReadResult(missing_from, events)

    async def get_record(self, run_id: str) -> RunRecord | None:
        """The run's record, or ``None`` if there is none (never created, or expired)."""
        if not valid_id(run_id):
            return None
        with self.guard():
            raw = await self.client.hgetall(self.run_keys(run_id)[0])
        if not raw:
            return None
        return record_from_hash(run_id, raw)

    async def lookup(self, client_run_id: str, *, owner: str | None = None) -> str | None:
        """The run id this owner's ``client_run_id`` names, if any."""
        with self.guard():
            return await self.client.get(self.alias_keys(owner, client_run_id)[0])

    # -- liveness primitives (loops in ``_redis_liveness``) -----------------------------

    async def beat(self) -> None:
        """Renew this worker's heartbeat key for ``heartbeat_ttl``."""
        with self.guard():
            await self.client.set(
                self.heartbeat_key(self.worker_id),
                "1",
                px=self._ms(self.config.heartbeat_ttl),
            )

    async def touch(self, run_id: str) -> list[str]:
        """Keep one owned run's keys (and alias) alive; the result of the TOUCH script:
        ``["live", cancel_reason, answered_ids...]`` or ``["finished"|"fenced"|"not_found"]``
        (then the run is no longer this worker's to run, and leaves :attr:`owned`)."""
        ttl = self._ms(self.config.live_ttl)
        result = await self._script(self._touch, self.run_keys(run_id), [self.worker_id, ttl])
        alias_key = self._owned.get(run_id)
        if result[0] != "live":
            self._owned.pop(run_id, None)
        elif alias_key is not None:
            await self._script(self._expire_alias, [alias_key], [run_id, ttl])
        return result

    async def live_runs(self) -> dict[str, str]:
        """The live index: run id -> owning worker."""
        with self.guard():
            return dict(await self.client.hgetall(self.live_key))

    async def worker_alive(self, worker_id: str) -> bool:
        with self.guard():
            return bool(await self.client.exists([self.heartbeat_key(worker_id)]))


def new_worker_id() -> str:
    return "w_" + secrets.token_hex(8)


def _client(url: str) -> coredis.Redis[str]:
    try:
        return coredis.Redis.from_url(url, decode_responses=True)
    except ValueError as exc:
        raise StoreUnavailable(f"{URL_SETTING} is not a Redis URL: {safe_url(url)}") from exc


async def probe_redis(url: str) -> None:
    """Raise :class:`StoreUnavailable` naming ``SCOPESTREAM_REDIS_URL`` unless Redis at
    ``url`` answers a PING (a service checks this before it starts serving). Writes
    nothing."""
    client = _client(url)
    async with client:
        await RedisStore(client, RedisStoreConfig(), "probe", safe_url(url)).ping()


@asynccontextmanager
async def open_redis_store(
    url: str,
    config: RedisStoreConfig | None = None,
    *,
    worker_id: str | None = None,
) -> AsyncIterator[RedisStore]:
    """Connect to Redis at ``url`` for the duration of the block.

    Checks that Redis answers before yielding: raises :class:`StoreUnavailable` naming
    ``SCOPESTREAM_REDIS_URL`` if it does not. Renews this worker's heartbeat once; keeping
    it alive is :func:`~engine.backends._redis_liveness.heartbeat_loop`'s job. The client is entered here, so open the
    store in a task that lives as long as its users (coredis requires it).
    """
    client = _client(url)
    store = RedisStore(
        client, config or RedisStoreConfig(), worker_id or new_worker_id(), safe_url(url)
    )
    body_error: BaseException | None = None
    async with client:
        try:
            await store.ping()
            # Beat once now: runs created before the heartbeat loop's first beat must not
            # look orphaned to a sweeper. Without the loop the key lapses, as it should.
            await store.beat()
            yield store
        except BaseException as exc:
            # Re-raised as it is below, not wrapped in an ExceptionGroup by the client's
            # task group: callers catch StoreUnavailable (and their own errors) directly.
            body_error = exc
    if body_error is not None:
        raise body_error
