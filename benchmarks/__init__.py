"""scopestream's benchmark suite: ``python -m benchmarks`` (``--quick``, ``--smoke``;
``--distributed`` for the Redis backend's part alone).

Layout::

    __main__, _cli      the command: arguments, output files
    _plan               what is measured, at which scale (steps, figures)
    _run                the orchestrator: phases, repeats, one load generator job at a time
    _servers            starting and stopping the servers under test
    _distributed        the distributed part: Redis vs memory backend, 1 vs 2 workers
    _redis              its redis-server, and the few commands it reads Redis with
    loadgen             the load generator process (``python -m benchmarks.loadgen``)
    _scenarios          the measurements it runs
    _client, _wire      its HTTP/1.1 + SSE client: asyncio protocols, sans-IO parsers
    _target, _stats     what a job points at; summary statistics
    peers/              sse-starlette on uvicorn, and the bare-Trio floor
    report/             markdown (the suite's and the distributed part's), targets, plots,
                        machine description
    results/            one folder per run (not committed)

See ``docs/benchmarks.md`` for the method and the latest results.
"""
