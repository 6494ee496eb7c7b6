"""The servers scopestream is measured against.

- ``starlette_peer``: sse-starlette's ``EventSourceResponse`` on uvicorn, the stack most Python
  teams reach for, serving the same runs contract as scopestream.
- ``floor``: a bare Trio TCP server that writes pre-formatted SSE bytes straight to the socket,
  one ``send_all`` per event: what a Trio stream costs with no framework at all.

Both speak the subset of scopestream's HTTP contract the benchmarks drive (``POST /v1/runs``
with the ``synthetic`` producer, ``POST /v1/runs/{id}/cancel``, ``GET /v1/runs/{id}`` with
``ended_at``, ``GET /healthz``) and emit byte-identical native frames, so one load generator
drives all three.
"""
