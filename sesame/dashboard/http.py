"""HTTP plumbing of the dashboard: request bodies parsed by hand (so that the session, CSRF
token and role are checked before the body), the error text of a refused input, and the
security headers every response carries."""

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sesame.dashboard.errors import ApiError

STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID",
    429: "RATE_LIMITED",
}


# -- request bodies --------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ZoneActionBody(_Body):
    reason: str = Field("", max_length=500)


class CorrectionBody(_Body):
    delta: int = Field(ge=-100_000, le=100_000, description="people to add (+) or remove (-)")
    reason: str = Field(min_length=1, max_length=500, description="why the count is corrected")


class EvacuationBody(_Body):
    on: bool
    reason: str = Field("", max_length=500)


def body_doc(model: type[BaseModel]) -> dict:
    """OpenAPI for a body parsed by hand (so that auth is checked before the body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


MAX_BODY = 16 * 1024


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to be too large: from the
    Content-Length header, else while it streams in (never buffered whole first)."""
    too_large = ApiError(413, "TOO_LARGE", f"request body over {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > MAX_BODY:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise too_large
    return bytes(raw)


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_body(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded" and model is LoginBody:
        try:  # parsed from the bytes already read (the request stream is consumed)
            data: Any = dict(parse_qsl(raw.decode("utf-8"), max_num_fields=20))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(422, "INVALID", "body is not a valid form") from None
    elif ctype == "application/json" or (ctype == "" and raw):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(422, "INVALID", "body is not valid JSON") from None
    else:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
    if not isinstance(data, dict):
        raise ApiError(422, "INVALID", "body must be a JSON object")
    try:  # JSON may carry lone surrogates ("\\ud800") that no UTF-8 message can hold
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(422, "INVALID", "body holds text that is not valid Unicode") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ApiError(422, "INVALID", first_error(e.errors())) from None


def first_error(errors: list[dict]) -> str:
    if not errors:
        return "invalid input"
    e = errors[0]
    loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
    msg = e.get("msg", "invalid")
    if e.get("type") == "extra_forbidden":
        msg = "unknown field"
    return f"{loc}: {msg}" if loc else msg


class SecurityHeaders:
    """Pure ASGI middleware (does not buffer, so the event stream flows)."""

    HEADERS = [
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
            b"form-action 'self'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on a
        # form POST, which sign-in refuses (login CSRF); other sites still get no referrer
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(self.HEADERS)
                if not path.startswith(("/static/", "/vendor/")):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
