"""The pack's PDF summary: achievement per criterion and the unit declaration (the RF10 and RF09 equivalents)."""
from typing import Any

from fpdf import FPDF
from sqlmodel import Session

from ..models import Candidate
from .assessment import SIGNOFF_DECLARATION, portfolio_state
from .evidence import unit_for


def _text(value: Any) -> str:
    """Return text the PDF's built-in font can set (it covers Latin-1 only)."""
    plain = str(value).replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    plain = plain.replace("\u2013", "-").replace("\u2014", "-").replace("\u2026", "...")
    return plain.encode("latin-1", "replace").decode("latin-1")


def _line(pdf: FPDF, height: float, text: str) -> None:
    """Set a paragraph across the page and move below it."""
    pdf.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def summary_pdf(session: Session, candidate: Candidate, data: dict) -> bytes:
    """Return the summary of achievement and unit declaration as PDF bytes."""
    unit = unit_for(session, candidate, "002")
    state = portfolio_state(session, candidate, unit)
    titles = {e["id"]: e["versions"][-1]["title"] for e in data["evidence"] if e["versions"]}
    pdf = FPDF(format="A4")
    pdf.set_title(_text(f"Portfolio summary: {data['candidate']['name']}"))
    pdf.add_page()
    pdf.set_font("helvetica", "B", 15)
    _line(pdf, 8, _text(f"Summary of achievement (RF10): {data['candidate']['name']}"))
    pdf.set_font("helvetica", "", 10)
    _line(pdf, 5, _text(f"Registration {candidate.registration_number} - {data['qualification']['code']} "
                               f"{data['qualification']['title']} - Unit {unit.code}: {unit.title}"))
    _line(pdf, 5, _text(f"Exported {data['exported_at']} by {data['sending_centre']}."))
    pdf.ln(3)
    for c in state.readiness.criteria:
        pdf.set_font("helvetica", "B", 10)
        _line(pdf, 5, _text(f"{c.code}  {c.label}"))
        pdf.set_font("helvetica", "", 9)
        _line(pdf, 4.5, _text(c.text))
        pieces = sorted({titles.get(i, i) for ids in c.evidence.values() for i in ids})
        if pieces:
            _line(pdf, 4.5, _text("Evidence: " + "; ".join(pieces)))
        pdf.ln(1.5)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 13)
    _line(pdf, 7, _text(f"Unit declaration (RF09): Unit {unit.code}"))
    pdf.set_font("helvetica", "", 10)
    signed = [s for s in data["sign_offs"] if s["unit"] == unit.code]
    names = {p["id"]: p["name"] for p in data["people"]}
    if not signed:
        _line(pdf, 5, "Not signed off yet.")
    for s in signed:
        _line(pdf, 5, _text(s["declaration"] or SIGNOFF_DECLARATION))
        _line(pdf, 5, _text(f"Signed by {names.get(s['assessor_id'], s['assessor_id'])} at {s['signed_at']}; "
                                   f"content hash {s['content_hash']}."))
        if s["reopened_at"]:
            _line(pdf, 5, _text(f"Reopened at {s['reopened_at']}: {s['reopen_reason']}"))
    return bytes(pdf.output())
