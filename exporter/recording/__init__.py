"""Recordings: what the sources read, raw and timestamped, and the pipeline replayed on them.

``rooftop record`` wraps each source at its injected boundary (the NVML backend, the HTTP fetch
of engines and dcgm-exporter, the host's process provider and process table, and the clocks)
and writes every answer into one gzip JSON-lines file, cycle by cycle. ``rooftop serve
--replay`` and ``rooftop probe --replay`` build the same sources on replaying stand-ins for
those boundaries, so the same parsing, rates, roofline and verdict code runs on the recorded
answers, at the recorded times.

Modules: :mod:`.format` (file layout, versions), :mod:`.codec` (values and text deltas),
:mod:`.tape` (the per-cycle recorder and player, clocks), :mod:`.nvml` (recording and replaying
NVML backends), :mod:`.fetch` (HTTP bodies), :mod:`.host` (process readings),
:mod:`.session` (wiring a sampler for recording or replay).

Limits, by design: a call that hung past its deadline replays as an unreadable GPU or a failed
fetch (the same state, not the same wait); Kubernetes engine discovery is not recorded (record
with ``--engine`` URLs); an engine whose ``model`` is a local ``config.json`` path needs that
file at the same path on the replaying machine, as the model files themselves are not recorded.
"""
