"""One exception tree for CareRoute.

    CareRouteError                 base; `http_status`, `retryable`, `reason` (short, safe to show)
    ├── RequestError               a webhook request we refuse (never retried by us)
    │   ├── SignatureError         401  bad / missing signature or secret, stale timestamp
    │   ├── PayloadError           400  body is not a delivery we can read
    │   ├── UnknownTenantError     404  no such tenant (the reply says nothing more)
    │   ├── PayloadTooLargeError   413
    │   └── UnsupportedMediaError  415
    ├── StoreUnavailableError      503  the job could not be made durable: the vendor must retry
    ├── VendorError                a call to Zendesk / Freshdesk failed
    │   ├── TransientVendorError   retry: 5xx, timeouts, dropped connections
    │   │   ├── RateLimitedError   429; carries `retry_after` seconds
    │   │   └── ConflictError      409 safe_update conflict: re-read, re-plan, retry
    │   └── PermanentVendorError   do not retry: 4xx such as 401/403/404/422
    │       └── TicketClosedError  422 "closed prevents ticket update": terminal, not an error
    └── ConfigError                invalid settings or tenants file (names tenant and key)

Messages are written by CareRoute, never copied from ticket text or from a vendor response body
(which may echo the ticket). `reason` is what an HTTP reply or a log line may carry.
"""

from __future__ import annotations


class CareRouteError(Exception):
    http_status: int = 500
    retryable: bool = False
    reason: str = "internal error"

    def __init__(self, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(self.reason)


class RequestError(CareRouteError):
    http_status = 400
    reason = "bad request"


class SignatureError(RequestError):
    http_status = 401
    reason = "invalid signature"


class PayloadError(RequestError):
    http_status = 400
    reason = "unreadable payload"


class UnknownTenantError(RequestError):
    http_status = 404
    reason = "not found"


class PayloadTooLargeError(RequestError):
    http_status = 413
    reason = "payload too large"


class UnsupportedMediaError(RequestError):
    http_status = 415
    reason = "unsupported media type"


class StoreUnavailableError(CareRouteError):
    http_status = 503
    retryable = True
    reason = "temporarily unavailable"


class VendorError(CareRouteError):
    http_status = 502
    reason = "vendor error"

    def __init__(self, reason: str | None = None, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class TransientVendorError(VendorError):
    retryable = True
    reason = "vendor temporarily unavailable"


class RateLimitedError(TransientVendorError):
    reason = "vendor rate limit"

    def __init__(
        self, reason: str | None = None, *, status: int | None = 429, retry_after: float = 1.0
    ) -> None:
        super().__init__(reason, status=status)
        self.retry_after = max(0.0, float(retry_after))


class ConflictError(TransientVendorError):
    reason = "ticket changed concurrently"


class PermanentVendorError(VendorError):
    retryable = False
    reason = "vendor refused the request"


class TicketClosedError(PermanentVendorError):
    reason = "ticket is closed"


class ConfigError(CareRouteError):
    reason = "invalid configuration"
