"""Typed domain errors. Each carries a machine code and a Chinese message; one set of handlers
(in :mod:`marketplace.web.errors`) turns them into HTML error pages or RFC 9457 problem details."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    code: str = "invalid"
    row: int | None = None


class DomainError(Exception):
    """A business rule refused the request. ``status`` is the HTTP status it maps to."""

    status = 422
    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ValidationFailed(DomainError):
    """One or more fields are invalid; nothing was changed."""

    code = "validation_failed"

    def __init__(self, errors: list[FieldError], message: str = "提交的内容有误，请检查标出的字段") -> None:
        super().__init__(message)
        self.errors = errors

    @classmethod
    def single(cls, field: str, message: str, code: str = "invalid") -> ValidationFailed:
        return cls([FieldError(field, message, code)])

    def by_field(self) -> dict[str, str]:
        """First message per field, for rendering beside form inputs."""
        result: dict[str, str] = {}
        for error in self.errors:
            result.setdefault(error.field, error.message)
        return result


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"
