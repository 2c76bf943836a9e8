"""Reading billing input from forms and API bodies: royalty reports, bank-transfer declarations,
refunds and the first-revenue date. Pure: every problem is reported at once, beside its field, in
Chinese; nothing here touches the database.

Pages type amounts in yuan (``12,345.67``); the API sends integer fen (``*_fen`` fields).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marketplace.billing.payments import RefundInput, TransferInput
from marketplace.billing.services import ReportInput
from marketplace.errors import FieldError, ValidationFailed
from marketplace.money import MAX_YUAN, parse_yuan
from marketplace.offers.rules import RoyaltyBase

KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_BREAKDOWN_LINES = 50
MAX_TEXT = 200
MAX_NOTE = 2000
MAX_UNITS = 10**12
MAX_FEN = int(MAX_YUAN) * 100


def _text(raw: Any) -> str:
    return raw.strip() if isinstance(raw, str) else ""


def _date(raw: Any) -> date | None:
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(_text(raw))
    except ValueError:
        return None


def _fen(raw: Any, *, yuan: bool) -> int | None:
    """An amount: yuan text from a page, integer fen from the API. None when it is not one."""
    if yuan:
        try:
            return parse_yuan(str(raw))
        except ValueError:
            return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0 or raw > MAX_FEN:
        return None
    return raw


def _units(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        raw = raw.strip().replace(",", "")
        if not raw.isdigit():
            return None
        raw = int(raw)
    if not isinstance(raw, int) or raw < 0 or raw > MAX_UNITS:
        return None
    return raw


def _key(raw: Any, field: str, errors: list[FieldError]) -> str:
    key = _text(raw)
    if not KEY.match(key):
        errors.append(FieldError(field, "请求标识无效，请刷新页面后重新提交", "invalid"))
    return key


def _base_label(base: RoyaltyBase) -> str:
    return "数量（件）" if base is RoyaltyBase.UNITS else f"{base.label}（元）"


def parse_report(raw: dict[str, Any], *, base: RoyaltyBase, yuan: bool) -> ReportInput:
    """A royalty report: the period, the base (or a nil report), an optional breakdown and note."""
    errors: list[FieldError] = []
    period = _text(raw.get("period"))
    if not period:
        errors.append(FieldError("period", "请选择报告期", "required"))
    nil_report = raw.get("nil_report") in (True, "on", "1", "true", "yes")
    amount: int | None = 0
    raw_base = raw.get("base_amount")
    if not nil_report:
        if raw_base in (None, ""):
            errors.append(FieldError("base_amount", f"请填写本期{_base_label(base)}；无销售请选择零报告", "required"))
        else:
            amount = _units(raw_base) if base is RoyaltyBase.UNITS else _fen(raw_base, yuan=yuan)
            if amount is None:
                what = "非负整数" if base is RoyaltyBase.UNITS else ("金额，最多两位小数" if yuan else "非负整数（分）")
                errors.append(FieldError("base_amount", f"{_base_label(base)}应为{what}"))
    elif raw_base not in (None, "", 0, "0", "0.00"):
        errors.append(FieldError("base_amount", "零报告的计提基数应为0"))
    breakdown = _breakdown(raw.get("breakdown"), base=base, yuan=yuan, errors=errors)
    note = _text(raw.get("note")) or None
    if note and len(note) > MAX_NOTE:
        errors.append(FieldError("note", f"说明不能超过{MAX_NOTE}个字符"))
    key = _key(raw.get("client_report_id"), "client_report_id", errors)
    if errors:
        raise ValidationFailed(errors)
    return ReportInput(
        obligation_key=period,
        client_report_id=key,
        nil_report=nil_report,
        base_amount=amount or 0,
        breakdown=breakdown,
        note=note,
    )


def _breakdown(raw: Any, *, base: RoyaltyBase, yuan: bool, errors: list[FieldError]) -> list[dict[str, Any]]:
    """Optional lines (product, region …) with an amount each; on pages one ``名称: 金额`` per line."""
    if raw in (None, "", []):
        return []
    if isinstance(raw, str):
        rows: list[Any] = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            label, sep, amount = line.replace("：", ":").rpartition(":")
            rows.append({"label": label.strip(), "amount": amount.strip()} if sep else {"label": line, "amount": None})
    elif isinstance(raw, list):
        rows = raw
    else:
        errors.append(FieldError("breakdown", "明细格式不正确"))
        return []
    if len(rows) > MAX_BREAKDOWN_LINES:
        errors.append(FieldError("breakdown", f"明细最多{MAX_BREAKDOWN_LINES}行"))
        return []
    lines = []
    for n, row in enumerate(rows, start=1):
        label = _text(row.get("label")) if isinstance(row, dict) else ""
        value = row.get("amount") if isinstance(row, dict) else None
        amount = _units(value) if base is RoyaltyBase.UNITS else _fen(value, yuan=yuan)
        if not label or len(label) > MAX_TEXT or amount is None:
            errors.append(FieldError("breakdown", f"第{n}行明细应为“名称: 金额”", "invalid"))
            continue
        lines.append({"label": label, "amount": amount})
    return lines


def parse_transfer(raw: dict[str, Any], *, yuan: bool, today: date) -> TransferInput:
    """A bank-transfer declaration (对公转账): payer, amount, remittance date, bank reference."""
    errors: list[FieldError] = []
    amount = _fen(raw.get("amount" if yuan else "amount_fen"), yuan=yuan)
    field = "amount" if yuan else "amount_fen"
    if amount is None or amount <= 0:
        errors.append(FieldError(field, "请填写大于0的汇款金额" + ("（元，最多两位小数）" if yuan else "（分）")))
    payer = _text(raw.get("payer_name"))
    if not payer:
        errors.append(FieldError("payer_name", "请填写付款单位名称", "required"))
    elif len(payer) > MAX_TEXT:
        errors.append(FieldError("payer_name", f"付款单位名称不能超过{MAX_TEXT}个字符"))
    account = _text(raw.get("payer_account")).replace(" ", "") or None
    if account and (len(account) > 40 or not account.isdigit()):
        errors.append(FieldError("payer_account", "付款账号应为数字，最多40位"))
    remitted = _date(raw.get("remitted_on"))
    if remitted is None:
        errors.append(FieldError("remitted_on", "请填写汇款日期（YYYY-MM-DD）", "required"))
    elif remitted > today:
        errors.append(FieldError("remitted_on", "汇款日期不能晚于今天", "out_of_range"))
    reference = _text(raw.get("reference"))
    if not reference:
        errors.append(FieldError("reference", "请填写银行流水号或回单编号", "required"))
    elif len(reference) > 100:
        errors.append(FieldError("reference", "流水号不能超过100个字符"))
    key = _key(raw.get("idempotency_key"), "idempotency_key", errors)
    if errors:
        raise ValidationFailed(errors)
    assert amount is not None and remitted is not None
    return TransferInput(
        amount_fen=amount,
        payer_name=payer,
        payer_account=account,
        remitted_on=remitted,
        reference=reference,
        idempotency_key=key,
    )


def parse_refund(raw: dict[str, Any], *, yuan: bool) -> RefundInput:
    errors: list[FieldError] = []
    field = "amount" if yuan else "amount_fen"
    amount = _fen(raw.get(field), yuan=yuan)
    if amount is None or amount <= 0:
        errors.append(FieldError(field, "请填写大于0的退款金额"))
    reason = _text(raw.get("reason"))
    if not reason:
        errors.append(FieldError("reason", "请说明退款原因", "required"))
    elif len(reason) > MAX_NOTE:
        errors.append(FieldError("reason", f"原因不能超过{MAX_NOTE}个字符"))
    reference = _text(raw.get("reference")) or None
    if reference and len(reference) > 100:
        errors.append(FieldError("reference", "流水号不能超过100个字符"))
    if errors:
        raise ValidationFailed(errors)
    assert amount is not None
    return RefundInput(amount_fen=amount, reason=reason, reference=reference)


def parse_first_revenue(raw: dict[str, Any]) -> date:
    day = _date(raw.get("first_revenue_on"))
    if day is None:
        raise ValidationFailed([FieldError("first_revenue_on", "请填写首笔收入日期（YYYY-MM-DD）", "required")])
    return day


def parse_rejection(raw: dict[str, Any]) -> str:
    reason = _text(raw.get("reason"))
    if not reason:
        raise ValidationFailed([FieldError("reason", "请说明未确认到账的原因", "required")])
    if len(reason) > MAX_NOTE:
        raise ValidationFailed([FieldError("reason", f"原因不能超过{MAX_NOTE}个字符")])
    return reason
