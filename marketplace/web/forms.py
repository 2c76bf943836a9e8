"""Helpers for HTML form handlers: reading fields and re-rendering with field errors."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from marketplace.errors import ValidationFailed


async def form_data(request: Request) -> dict[str, Any]:
    """Form fields as a dict; repeated fields (checkboxes) become lists, uploads stay UploadFile."""
    form = await request.form()
    data: dict[str, Any] = {}
    for key in form:
        if key == "_csrf_token":
            continue
        values = form.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    return data


def form_error(template: str, exc: ValidationFailed, context: dict[str, Any]) -> Template:
    """Re-render a form with the messages beside their fields; 422 makes the request roll back."""
    return Template(
        template_name=template,
        context={**context, "errors": exc.by_field(), "error_list": exc.errors, "error_summary": exc.message},
        status_code=422,
    )
