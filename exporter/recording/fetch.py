"""HTTP bodies at the fetch boundary: engines' and dcgm-exporter's expositions as received.

Sources take a ``fetch(url, timeout_seconds, max_bytes) -> text`` callable; recording wraps the
real one, replay answers from the recording. Keys are :func:`public_url` forms of the URL:
never the ``user:password@`` part (it is sent as a basic-auth header, which is not recorded
either), never the value of a secret-looking query parameter (``token``, ``api_key`` ...).
Error messages are recorded with URLs redacted the same way. A replayed fetch raises
:class:`~rooftop.exporter.sources.http.FetchError` with the recorded message and problem, which
the sources handle as they did live.
"""

from __future__ import annotations

from typing import get_args

from rooftop.exporter.recording.format import RecordingError
from rooftop.exporter.recording.tape import HTTP_CHANNEL, Player, Recorder
from rooftop.exporter.settings import redact_url
from rooftop.exporter.sources.engine import EngineFetchError
from rooftop.exporter.sources.http import Fetch, FetchError, FetchProblem


def public_url(url: str) -> str:
    """``url`` as it may be recorded: :func:`~rooftop.exporter.settings.redact_url`."""
    return redact_url(url)


def redact_text(text: str) -> str:
    """Every URL in ``text`` redacted the same way (for recorded error messages)."""
    return redact_url(text)


def recording_fetch(inner: Fetch, recorder: Recorder) -> Fetch:
    """``inner``, with each body (or the failure) recorded under the URL's public form."""

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        cycle = recorder.call_started()
        key = public_url(url)
        try:
            text = inner(url, timeout_seconds, max_bytes)
        except Exception as error:
            outcome: dict[str, object] = {
                "error": redact_text(str(error)),
                "type": type(error).__name__,
            }
            if isinstance(error, FetchError):
                outcome["problem"] = error.problem
                outcome["status"] = error.status
            recorder.add(cycle, HTTP_CHANNEL, key, outcome)
            raise
        recorder.add(cycle, HTTP_CHANNEL, key, {"text": text})
        return text

    return fetch


def replay_fetch(player: Player) -> Fetch:
    """A fetch that answers each URL with its next recorded body or failure in this cycle."""

    def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
        key = public_url(url)
        outcome = player.take(HTTP_CHANNEL, key)
        if outcome is None:
            if "name[]=" in key:
                # A recording of whole bodies (made before name filtering, or with it off): a
                # 404, which the engine source takes as "refuses the query" and asks whole.
                raise FetchError(
                    f"{key}: not in the recording (whole bodies only)", problem="status", status=404
                )
            raise FetchError(f"{key}: not fetched in this cycle of the recording")
        if not isinstance(outcome, dict):
            raise RecordingError(f"http {key}: recorded outcome {outcome!r} is not an object")
        if "text" in outcome and isinstance(outcome["text"], str):
            return outcome["text"]
        message = str(outcome.get("error", "recorded failure"))
        if outcome.get("type") == "FetchError":
            problem = outcome.get("problem")
            status = outcome.get("status")
            raise FetchError(
                message,
                problem=problem if problem in get_args(FetchProblem) else "other",  # type: ignore[arg-type]
                status=status if isinstance(status, int) else None,
            )
        if outcome.get("type") == "EngineFetchError":
            raise EngineFetchError(message)
        raise OSError(message)

    return fetch


__all__ = ["public_url", "recording_fetch", "redact_text", "replay_fetch"]
