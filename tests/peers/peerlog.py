"""What the peer scripts share: the errors Twisted logged, for their JSON report."""

from __future__ import annotations


def logged_errors(limit: int | None = None) -> list[str]:
    """Start collecting the error events Twisted logs (with their tracebacks, each cut
    to its last *limit* characters); returns the list they are appended to."""
    from twisted.logger import formatEvent, globalLogPublisher

    errors: list[str] = []

    def observe(event: dict) -> None:
        failure = event.get("log_failure")
        if failure is not None or event.get("isError"):
            text = formatEvent(event)
            if failure is not None:
                text += "\n" + failure.getTraceback()
            errors.append(text if limit is None else text[-limit:])

    globalLogPublisher.addObserver(observe)
    return errors
