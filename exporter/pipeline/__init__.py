"""The sampler's stages, in the order data flows through them each cycle.

``status`` (timing and health of every source) → ``gpus`` (GPU readings, DCGM merge, lost
GPUs, catalog specs and peaks) → ``engines`` (one tracker per engine: polls, rates, model,
GPU mapping) → ``join`` (GPU × engine targets: operating point, verdict, hysteresis). The
:mod:`rooftop.exporter.sampler` runs them once per interval and publishes the snapshot.
"""
