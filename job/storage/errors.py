"""Storage failures: what is worth another try, and one line describing any of them.

s3fs turns an S3 answer into a Python error (NoSuchBucket into FileNotFoundError, AccessDenied
into PermissionError, SlowDown into OSError EBUSY) with the botocore error as its cause, so an
error and its causes are read outermost first.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from job.errors import BadInput, InfrastructureError


class StorageError(InfrastructureError):
    """A storage operation failed for good. The message names the URI and the operation."""


class StorageRefused(BadInput, StorageError):
    """The storage location refuses us whatever we retry: no such bucket, access denied, no or bad
    credentials, no filesystem for the scheme, a read-only or wrong path. Bad input (exit 2): the
    Job controller does not retry it."""


# Error codes of S3 (and S3-compatible) answers worth another try.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "OperationAborted",
        "PriorRequestNotComplete",
    }
)
# Exception classes (by name, anywhere in the class hierarchy) from the S3 and HTTP clients that
# mean the request did not get an answer: botocore's connection and HTTP errors, aiohttp's
# connection, disconnection and timeout errors, fsspec's timeout.
TRANSIENT_CLASSES = frozenset(
    {
        "ConnectionError",  # botocore's (endpoint, proxy, connect timeout) as well as Python's
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "HTTPClientError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectionError",
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
        "FSTimeoutError",
    }
)
# ... except these, which no retry fixes.
FINAL_CLASSES = frozenset(
    {
        "SSLError",
        "ClientSSLError",
        "ClientConnectorCertificateError",
        "CertificateError",
        "NoCredentialsError",
        "PartialCredentialsError",
        "ParamValidationError",
    }
)
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EPIPE,
        errno.EAGAIN,
        errno.EBUSY,  # s3fs: ServiceUnavailable, SlowDown, OperationAborted
        getattr(errno, "EREMOTEIO", errno.EIO),  # s3fs: InternalError
    }
)
TRANSIENT_PHRASES = (
    "timed out",
    "connection reset",
    "connection refused",
    "service unavailable",
    "slow down",
    "reduce your request rate",
    "too many requests",
    "throttl",
)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and len(seen) < 10:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _response(err: BaseException) -> tuple[str | None, int | None]:
    """The error code and HTTP status of a botocore ClientError (None, None for anything else)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None, None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (str(code) if code else None), (int(status) if isinstance(status, int) else None)


def _http_status(err: BaseException) -> int | None:
    for name in ("status", "status_code", "code"):
        value = getattr(err, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _classify(err: BaseException) -> bool | None:
    """True: transient; False: final; None: this error alone does not say."""
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & FINAL_CLASSES:
        return False
    if isinstance(err, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return False
    if isinstance(err, FileExistsError):
        return False
    code, status = _response(err)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or status in (408, 429) or (status or 0) >= 500
    status = _http_status(err)
    if status is not None:
        return status in (408, 429) or status >= 500
    if names & TRANSIENT_CLASSES or isinstance(err, ConnectionError | TimeoutError):
        return True
    if isinstance(err, OSError) and err.errno in TRANSIENT_ERRNOS:
        return True
    text = str(err).lower()
    if any(phrase in text for phrase in TRANSIENT_PHRASES):
        return True
    return None


def is_transient(err: BaseException) -> bool:
    """Connection failures, timeouts, throttling and 5xx answers are worth another try.

    The error and its causes are read outermost first: s3fs turns an S3 answer into a Python
    error (NoSuchBucket into FileNotFoundError, AccessDenied into PermissionError, SlowDown into
    OSError EBUSY) with the botocore error as its cause.
    """
    for link in _chain(err):
        verdict = _classify(link)
        if verdict is not None:
            return verdict
    return False


def bucket_missing(err: BaseException) -> bool:
    return any(_response(link)[0] == "NoSuchBucket" for link in _chain(err))


def missing(err: BaseException) -> bool:
    """The object is not there (as opposed to its bucket)."""
    return isinstance(err, FileNotFoundError) and not bucket_missing(err)


def describe(err: BaseException) -> str:
    """One line for a storage error: the S3 error code and message where there is one."""
    for link in _chain(err):
        code, _ = _response(link)
        if code is not None:
            message = getattr(link, "response", {}).get("Error", {}).get("Message") or str(link)
            return f"{code}: {message}"
    return f"{type(err).__name__}: {err}"


# S3 answers that no retry, and no later run, fixes without a change of settings.
REFUSAL_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AccountProblem",
        "ExpiredToken",
        "InvalidToken",
        "InvalidClientTokenId",
    }
)
REFUSAL_CLASSES = frozenset({"NoCredentialsError", "PartialCredentialsError", "ClientSSLError", "SSLError"})
REFUSAL_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR})


def is_refusal(err: BaseException) -> bool:
    """The location refuses us (bad input), as opposed to failing (infrastructure)."""
    for link in _chain(err):
        code, _ = _response(link)
        if code in REFUSAL_CODES:
            return True
        if {cls.__name__ for cls in type(link).__mro__} & REFUSAL_CLASSES:
            return True
        if isinstance(link, PermissionError | NotADirectoryError | IsADirectoryError):
            return True
        if isinstance(link, OSError) and link.errno in REFUSAL_ERRNOS:
            return True
    return False
