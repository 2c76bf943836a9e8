"""The registries' code tables, kept as data files in ``filings/data/`` because the registries' current
tables may differ from ours: party nature (单位性质), technology field (技术领域), IP type (知识产权类型),
payment mode (支付方式), country (国别代码), and our IPC → technology-field concordance."""

from __future__ import annotations

from pathlib import Path

from marketplace.accounts.models import OrganisationKind
from marketplace.patents.models import PatentType

_DATA = Path(__file__).parent / "data"


def _rows(name: str) -> list[list[str]]:
    rows = []
    for line in (_DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append([cell.strip() for cell in line.split("\t")])
    return rows


def _table(name: str) -> dict[str, str]:
    return {row[0]: row[1] for row in _rows(name)}


PARTY_NATURES = _table("party_natures.tsv")
TECHNOLOGY_FIELDS = _table("technology_fields.tsv")
IP_TYPES = _table("ip_types.tsv")
COUNTRIES = _table("countries.tsv")
_IPC_FIELDS = _table("ipc_technology_fields.tsv")
#: Our payment mode → (registry code, registry name).
PAYMENT_MODES = {mode: (row[0], row[1]) for row in _rows("payment_modes.tsv") for mode in row[2].split(",")}

CHINA = "156"
_DEFAULT_NATURE = {OrganisationKind.UNIVERSITY: "022", OrganisationKind.INSTITUTE: "021"}
#: Natures consistent with an organisation kind: public institutions (02x) for universities and
#: institutes, enterprises (1xx–4xx) for enterprises.
_NATURE_PREFIXES = {
    OrganisationKind.UNIVERSITY: ("02",),
    OrganisationKind.INSTITUTE: ("02",),
    OrganisationKind.ENTERPRISE: ("1", "2", "3", "4"),
}
_IP_TYPE = {PatentType.INVENTION: "01", PatentType.UTILITY_MODEL: "02", PatentType.DESIGN: "03"}
_FALLBACK_FIELD = "03"


def party_nature(kind: OrganisationKind, nature_code: str | None) -> str | None:
    """The organisation's party nature code: its own, else the default of its kind (universities 022,
    institutes 021); enterprises have no default (a limited company and a private firm differ)."""
    return nature_code or _DEFAULT_NATURE.get(kind)


def nature_fits_kind(kind: OrganisationKind, code: str) -> bool:
    prefixes = _NATURE_PREFIXES.get(kind)
    return prefixes is None or code.startswith(prefixes)


def technology_field(ipc: str | None) -> str:
    """The technology field code of a patent from its main IPC, by the longest listed prefix."""
    compact = (ipc or "").replace(" ", "").upper()
    for length in (4, 3, 1):
        code = _IPC_FIELDS.get(compact[:length]) if len(compact) >= length else None
        if code:
            return code
    return _FALLBACK_FIELD


def ip_type(patent_type: PatentType) -> str:
    return _IP_TYPE[patent_type]


def payment_mode(mode: str) -> tuple[str, str]:
    """Registry code and name of one of our payment modes (pay-after-use: the mode it defers to)."""
    return PAYMENT_MODES[mode]
