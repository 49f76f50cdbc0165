"""Domain errors. Adapters turn library errors into these; handlers map them to answers."""

from __future__ import annotations


class PatchpropError(Exception):
    """Base of every error patchprop raises on purpose; `field` names the input it is about."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidReference(PatchpropError, ValueError):
    """An image reference that Docker would not accept."""


class RegistryError(PatchpropError):
    """A registry call failed in a way the caller should know about."""


class ManifestNotFound(RegistryError):
    """The registry has no manifest for that tag or digest."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached, timed out or answered 5xx."""


class RegistryRateLimited(RegistryError):
    """The registry answered 429; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryAuthError(RegistryError):
    """The registry refused our credentials or the token realm failed."""


class BuildThrottled(PatchpropError):
    """CodeBuild refused to start a build for now (throttling or concurrency quota)."""


class Deferred(PatchpropError):
    """Not now, by patchprop's own rules: look again in `seconds`."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class CapReached(Deferred):
    """patchprop's own concurrency cap is full: wait for a running rebuild to finish."""


class CoolingDown(Deferred):
    """The image was rebuilt less than its cooldown ago; a newer base digest may supersede this."""


class BuildStartFailed(PatchpropError):
    """CodeBuild refused to start a build for good (unknown project, bad request)."""


class StoreError(PatchpropError):
    """DynamoDB failed."""


class LimitExceeded(PatchpropError):
    """The store refused a write for its size or its number of items: retrying cannot help."""


class NotFound(PatchpropError):
    """A requested item does not exist."""


class TagMoved(RegistryError):
    """The tag does not hold the digest the caller expected: a newer promotion or push won."""

    def __init__(self, message: str, current: str | None) -> None:
        super().__init__(message)
        self.current = current


class TagMoveRefused(RegistryError):
    """The registry refused the tag move for good (4xx: immutable tag, denied, bad manifest)."""


class NotPromotable(PatchpropError):
    """A promotion or rollback that cannot be done as asked (still running, nothing to go back
    to, the tag moved since): nothing was changed."""


class PromotionPending(PatchpropError):
    """A rebuild passed, but its tag move failed for now: the event is retried."""


class InvalidQuery(PatchpropError, ValueError):
    """A query parameter that does not read (e.g. the report's `since`): 400, naming it."""
