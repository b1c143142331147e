"""Tensor-parallel communication time of one forward step. Pure arithmetic.

Megatron-style tensor parallelism (what vLLM, SGLang and TRT-LLM run) all-reduces the
activations after every row-parallel layer: the attention output projection and the MLP down
projection, two per decoder layer, plus one after the vocab-parallel input embedding
(research/roofline-anchors.md §3.7: "TP all-reduce: 2 per layer"). Each all-reduce carries
``tokens x hidden_size`` 16-bit activations. The final logits gather (one collective) is left
out: under 1 % of the collectives of any model here.

One all-reduce over ``n`` GPUs, ring algorithm (NCCL's model, ``src/graph/tuning.cc``)::

    t = base_latency + 2 (n - 1) x hop_latency + 2 (n - 1) / n x message_bytes / link_bandwidth

``base_latency`` is :data:`~rooftop.classifiers.hardware.COLLECTIVE_BASE_LATENCY_SECONDS`,
the link's per-direction bandwidth and per-hop latency come from the GPU's
:class:`~rooftop.classifiers.hardware.Interconnect`. Decode messages are KBs, so the latency
terms dominate: Llama-3.1-70B at TP 8 over NVLink 4 does 161 all-reduces of 16 KiB at batch 1,
each 3.6 + 14 x 0.47 = 10.2 us plus 0.06 us of transfer, 1.65 ms a step. Collectives are on the
critical path of a decode step (the next layer needs the reduced activations), so their time
adds to the step's roofline time rather than hiding under it.
"""

from __future__ import annotations

from rooftop.classifiers.hardware import COLLECTIVE_BASE_LATENCY_SECONDS, Interconnect
from rooftop.classifiers.models import ACTIVATION_BYTES, ModelArchitecture


def all_reduce_seconds(message_bytes: float, gpus: int, link: Interconnect) -> float:
    """Seconds for one ring all-reduce of ``message_bytes`` over ``gpus`` GPUs (0 for one)."""
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a positive integer, got {gpus!r}")
    if message_bytes < 0:
        raise ValueError(f"message_bytes must not be negative, got {message_bytes!r}")
    if gpus == 1:
        return 0.0
    hops = 2 * (gpus - 1)
    transfer = hops / gpus * message_bytes / link.bandwidth_bytes_per_second
    return COLLECTIVE_BASE_LATENCY_SECONDS + hops * link.hop_latency_seconds + transfer


def tensor_parallel_all_reduces(arch: ModelArchitecture) -> int:
    """All-reduces per forward step: ``2 x num_layers + 1`` (see module docstring)."""
    return 2 * arch.num_layers + 1


def step_communication_seconds(
    arch: ModelArchitecture, tokens_in_step: int, tp: int, link: Interconnect | None
) -> float:
    """Collective time of one forward step over ``tokens_in_step`` tokens at ``tp`` GPUs:
    ``(2 L + 1) x all_reduce_seconds(tokens x d x 2 bytes)``; 0 at ``tp`` 1 or with no link
    figure (not modelled)."""
    if tp == 1 or link is None:
        return 0.0
    if tokens_in_step < 0:
        raise ValueError(f"tokens_in_step must not be negative, got {tokens_in_step!r}")
    message = float(tokens_in_step * arch.hidden_size * ACTIVATION_BYTES)
    return tensor_parallel_all_reduces(arch) * all_reduce_seconds(message, tp, link)


def step_communication_bytes(arch: ModelArchitecture, tokens_in_step: int, tp: int) -> float:
    """Bytes one GPU sends over its link in one step: ``(2 L + 1) x 2 (tp - 1) / tp x
    message`` (a ring all-reduce sends each byte twice, less its own share)."""
    if tp == 1:
        return 0.0
    message = float(tokens_in_step * arch.hidden_size * ACTIVATION_BYTES)
    return tensor_parallel_all_reduces(arch) * 2 * (tp - 1) / tp * message


def interconnect_active_ratio(
    tx_bytes_per_second: float | None,
    rx_bytes_per_second: float | None,
    link: Interconnect | None,
) -> float | None:
    """NVLink traffic (GPM ``NVLINK_TOTAL_TX/RX_PER_SEC``, DCGM ``NVLINK_TX/RX_BYTES``) over the
    link's peak in both directions: ``(tx + rx) / (2 x per-direction bandwidth)``, 0-1; ``None``
    without both rates or a link figure."""
    if tx_bytes_per_second is None or rx_bytes_per_second is None or link is None:
        return None
    if tx_bytes_per_second < 0 or rx_bytes_per_second < 0:
        raise ValueError("NVLink rates must not be negative")
    return (tx_bytes_per_second + rx_bytes_per_second) / (2 * link.bandwidth_bytes_per_second)
