"""One place that turns errors into responses: RFC 9457 problem details under /api, pages elsewhere.

No request ever gets a bare 500 with a traceback; unexpected errors are logged and answered with
a generic message.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from marketplace.errors import DomainError, ValidationFailed
from marketplace.web.auth import is_api_path

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "请求格式不正确",
    401: "需要登录或有效的 API 令牌",
    403: "没有权限",
    404: "未找到",
    405: "不支持该请求方法",
    409: "与当前状态冲突",
    413: "上传内容过大",
    422: "提交的内容有误",
    429: "请求过于频繁",
    500: "服务器内部错误",
}


def problem(status: int, detail: str, *, code: str, errors: list[dict[str, Any]] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": f"about:blank#{code}",
        "title": _TITLES.get(status, "请求失败"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON)


def _error_page(request: Request, status: int, message: str) -> Response:
    return Template(
        template_name="error.html.j2",
        context={"status": status, "title": _TITLES.get(status, "请求失败"), "message": message},
        status_code=status,
    )


def domain_error_handler(request: Request, exc: DomainError) -> Response:
    if is_api_path(request.url.path):
        errors = None
        if isinstance(exc, ValidationFailed):
            errors = [
                {"field": e.field, "message": e.message, "code": e.code} | ({"row": e.row} if e.row else {})
                for e in exc.errors
            ]
        return problem(exc.status, exc.message, code=exc.code, errors=errors)
    message = exc.message
    if isinstance(exc, ValidationFailed):
        message = "；".join(f"{e.message}" for e in exc.errors[:10])
    return _error_page(request, exc.status, message)


def validation_handler(request: Request, exc: ValidationException) -> Response:
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            errors.append({"field": item.get("key") or "body", "message": item.get("message", ""), "code": "invalid"})
    if is_api_path(request.url.path):
        return problem(400, "请求内容无法解析或字段类型不正确", code="bad_request", errors=errors)
    return _error_page(request, 400, "请求内容不正确，请返回检查后重新提交")


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status == HTTP_500_INTERNAL_SERVER_ERROR:
        return internal_error_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else _TITLES.get(status, "请求失败")
    if is_api_path(request.url.path):
        response = problem(status, detail, code=_code_for(status))
        if isinstance(exc, NotAuthorizedException):
            response.headers["WWW-Authenticate"] = 'Bearer realm="marketplace"'
        return response
    if isinstance(exc, NotAuthorizedException):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path=f"/login?next={quote(target)}")
    return _error_page(request, status, detail)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if is_api_path(request.url.path):
        return problem(500, "服务器内部错误，请稍后重试", code="internal_error")
    return Response(
        content="<h1>服务器内部错误</h1><p>请稍后重试。</p>", status_code=500, media_type=MediaType.HTML
    )


def _code_for(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            409: "conflict", 413: "too_large", 429: "too_many_requests"}.get(status, "error")


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
