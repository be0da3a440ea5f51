"""Render a certificate of carbon credit retirement as an A4 PDF and as a standalone HTML page."""

import html
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.enums import Align, TableBordersLayout, TableCellFillMode, VAlign, XPos, YPos
from fpdf.fonts import TTFFont

TITLE = "Certificate of Carbon Credit Retirement"
TEST_BANNER = "TEST — NOT A REAL RETIREMENT"
TEST_EXPLANATION = "Issued with a test API key: no carbon credits were retired."
ISSUER = "Carbon Gateway"
CO2E = "CO₂e"
CLOSING_NOTE = (
    "Each row lists carbon credits retired in the named registry under the serial numbers shown."
)
MODES = ("TEST", "LIVE")

_FONTS_DIR = Path(__file__).parent / "fonts"
_REGULAR_FONT = _FONTS_DIR / "DejaVuSans.ttf"
_BOLD_FONT = _FONTS_DIR / "DejaVuSans-Bold.ttf"
_FONT_FAMILY = "dejavu-sans"
# Drawn for characters the bundled font has no glyph for (CJK, emoji, …); the HTML page shows
# the exact text, the PDF at least keeps its length and never crashes.
_MISSING_GLYPH = "?"
_LINE_BREAKS = frozenset("\n\r\u2028\u2029")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class CertificateProject:
    """One allocation of the order: credits of one batch of one project."""

    name: str
    project_type: str
    registry: str
    registry_id: str
    country: str
    vintage: int
    serial_range: str
    mass_grams: int


@dataclass(frozen=True)
class CertificateView:
    """Everything a certificate shows, already read from the database."""

    certificate_id: str
    issued_at: datetime
    account_name: str
    mode: str  # "TEST" or "LIVE"; `app.accounts.models.Mode` members are accepted as they are
    mass_grams: int
    description: str | None
    projects: Sequence[CertificateProject]
    public_url: str  # the HTML page; the PDF is the same URL with ".pdf" appended

    def __post_init__(self) -> None:
        if self.issued_at.tzinfo is None:
            raise ValueError("issued_at must be timezone-aware")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")

    @property
    def is_test(self) -> bool:
        return self.mode == "TEST"

    @property
    def pdf_url(self) -> str:
        return f"{self.public_url}.pdf"


def format_mass(grams: int) -> str:
    """A mass as people read it on a certificate, exactly: below one tonne in kilograms (up to
    3 decimals, i.e. to the gram), from one tonne in tonnes (up to 6 decimals), trailing zeros
    trimmed and thousands grouped: 1 g → "0.001 kg", 1000 g → "1 kg", 1250000 g → "1.25 t"."""
    if grams < 0:
        raise ValueError("a mass cannot be negative")
    # scaleb only moves the decimal point, so no digit is ever rounded.
    if grams < 1_000_000:
        amount, unit = Decimal(grams).scaleb(-3), "kg"
    else:
        amount, unit = Decimal(grams).scaleb(-6), "t"
    return f"{amount.normalize():,f} {unit}"


def format_issue_date(issued_at: datetime) -> str:
    """The UTC calendar date, spelled out so that no reader mistakes day for month."""
    day = issued_at.astimezone(UTC).date()
    # Not strftime("%B"): that follows the process locale.
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _clean_user_text(text: str, *, keep_newlines: bool = False) -> str:
    """User text without control and invisible formatting characters (NUL, bidi overrides,
    zero-width joiners…), which are invalid in HTML or can disguise what a certificate says.
    Line breaks become spaces unless asked for."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\t", " "))
    kept = []
    for char in text:
        if char in _LINE_BREAKS:
            kept.append("\n" if keep_newlines else " ")
        # Lone surrogates (Cs) would also make the page impossible to encode as UTF-8.
        elif unicodedata.category(char) not in ("Cc", "Cf", "Cs"):
            kept.append(char)
    return "".join(kept).strip()


# --------------------------------------------------------------------------------------- PDF


def _glyph_safe(text: str, supported: frozenset[int]) -> str:
    """`text` with every character the font cannot draw replaced: by its compatibility
    decomposition when the font has that (e.g. "ﬁ" → "fi"), otherwise by a placeholder."""
    safe = []
    for char in text:
        if ord(char) in supported or char == "\n":
            safe.append(char)
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        if decomposed != char and all(ord(part) in supported for part in decomposed):
            safe.append(decomposed)
        else:
            safe.append(_MISSING_GLYPH)
    return "".join(safe)


_INK = (33, 37, 41)
_MUTED = (108, 117, 125)
_BRAND = (22, 101, 52)
_ALERT = (185, 28, 28)
_PANEL = (240, 247, 242)
_STRIPE = (247, 249, 248)


class _CertificatePDF(FPDF):
    """An A4 page with the certificate's frame, running header, footer and TEST watermark."""

    def __init__(self, view: CertificateView) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.view = view
        self.add_font(_FONT_FAMILY, "", _REGULAR_FONT)
        self.add_font(_FONT_FAMILY, "B", _BOLD_FONT)
        regular, bold = self.fonts[_FONT_FAMILY], self.fonts[f"{_FONT_FAMILY}B"]
        if not (isinstance(regular, TTFFont) and isinstance(bold, TTFFont)):
            raise RuntimeError("the bundled certificate fonts did not load as TrueType fonts")
        # User text may appear in either weight, so only characters both can draw are kept.
        self.supported_chars = frozenset(regular.cmap) & frozenset(bold.cmap)
        self.set_margins(left=20, top=20, right=20)
        self.set_auto_page_break(auto=True, margin=24)
        self.alias_nb_pages()

    def user_text(self, text: str, *, keep_newlines: bool = False) -> str:
        return _glyph_safe(
            _clean_user_text(text, keep_newlines=keep_newlines), self.supported_chars
        )

    def header(self) -> None:
        self._draw_frame()
        if self.page_no() > 1:
            self.set_xy(self.l_margin, 13)
            self.set_font(_FONT_FAMILY, "", 8)
            self.set_text_color(*_MUTED)
            self.cell(text=f"{TITLE} · {self.view.certificate_id}")
            self.set_y(self.t_margin)
        self.set_text_color(*_INK)

    def footer(self) -> None:
        if self.view.is_test:
            self._draw_watermark()
            self.set_y(-21)
            self.set_font(_FONT_FAMILY, "B", 8)
            self.set_text_color(*_ALERT)
            self.cell(0, 4, TEST_BANNER, align=Align.C)
        self.set_y(-16.5)
        self.set_font(_FONT_FAMILY, "", 8)
        self.set_text_color(*_MUTED)
        half = self.epw / 2
        self.cell(half, 4, f"{ISSUER} · certificate {self.view.certificate_id}", align=Align.L)
        self.cell(half, 4, f"Page {self.page_no()} of {{nb}}", align=Align.R)
        self.set_text_color(*_INK)

    def _draw_frame(self) -> None:
        self.set_draw_color(*_BRAND)
        self.set_line_width(0.9)
        self.rect(8, 8, self.w - 16, self.h - 16)
        self.set_line_width(0.2)
        self.rect(10, 10, self.w - 20, self.h - 20)

    def _draw_watermark(self) -> None:
        # Drawn last on every page, translucent, so filled table rows cannot hide it.
        # Two lines, each narrower than the page: fpdf2 reads a negative x as "from the right".
        centre_x, centre_y = self.w / 2, self.h / 2
        with (
            self.local_context(fill_opacity=0.09, text_color=_ALERT),
            self.rotation(angle=55, x=centre_x, y=centre_y),
        ):
            self.set_font(_FONT_FAMILY, "B", 120)
            self.set_xy(0, centre_y - 30)
            self.cell(self.w, 40, "TEST", align=Align.C)
            self.set_font(_FONT_FAMILY, "B", 26)
            self.set_xy(0, centre_y + 12)
            self.cell(self.w, 12, "NOT A REAL RETIREMENT", align=Align.C)


_TABLE_HEADINGS = ("Project", "Registry", "Country", "Vintage", "Serial range", "Mass")
_TABLE_COLUMN_WIDTHS = (44, 28, 19, 17, 36, 26)
_TABLE_ALIGN = ("LEFT", "LEFT", "LEFT", "CENTER", "LEFT", "RIGHT")


def render_certificate_pdf(view: CertificateView) -> bytes:
    """The certificate as an A4 PDF; the same view always gives the same bytes."""
    pdf = _CertificatePDF(view)
    pdf.set_title(f"{TITLE} {view.certificate_id}")
    account = _clean_user_text(view.account_name)
    pdf.set_subject(f"{format_mass(view.mass_grams)} {CO2E} retired for {account}")
    pdf.set_author(ISSUER)
    pdf.set_creator(ISSUER)
    pdf.set_lang("en")
    # Otherwise fpdf2 stamps the current time and the same certificate changes on every download.
    pdf.set_creation_date(view.issued_at.astimezone(UTC))
    pdf.add_page()
    _pdf_title(pdf)
    if view.is_test:
        _pdf_test_banner(pdf)
    _pdf_statement(pdf, view)
    _pdf_details(pdf, view)
    if view.description and _clean_user_text(view.description):
        _pdf_description(pdf, view.description)
    _pdf_projects(pdf, view)
    _pdf_closing_note(pdf, view)
    return bytes(pdf.output())


def _pdf_title(pdf: _CertificatePDF) -> None:
    pdf.set_y(22)
    pdf.set_font(_FONT_FAMILY, "B", 9)
    pdf.set_text_color(*_BRAND)
    pdf.set_char_spacing(2)
    pdf.cell(0, 5, ISSUER.upper(), align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_char_spacing(0)
    pdf.ln(3)
    pdf.set_font(_FONT_FAMILY, "B", 20)
    pdf.set_text_color(*_INK)
    pdf.multi_cell(0, 9, TITLE, align=Align.C)
    pdf.ln(3)
    pdf.set_draw_color(*_BRAND)
    pdf.set_line_width(0.4)
    pdf.line(pdf.w / 2 - 25, pdf.get_y(), pdf.w / 2 + 25, pdf.get_y())
    pdf.ln(6)


def _pdf_test_banner(pdf: _CertificatePDF) -> None:
    pdf.set_fill_color(*_ALERT)
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(_FONT_FAMILY, "B", 13)
    pdf.cell(0, 9, TEST_BANNER, align=Align.C, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FONT_FAMILY, "", 9)
    pdf.cell(0, 6, TEST_EXPLANATION, align=Align.C, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*_INK)
    pdf.ln(5)


def _pdf_statement(pdf: _CertificatePDF, view: CertificateView) -> None:
    def line(text: str, style: str, size: float, color: tuple[int, int, int], h: float) -> None:
        pdf.set_font(_FONT_FAMILY, style, size)
        pdf.set_text_color(*color)
        pdf.multi_cell(0, h, text, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line("This certifies that carbon credits equivalent to", "", 11, _MUTED, 6)
    line(f"{format_mass(view.mass_grams)} {CO2E}", "B", 26, _BRAND, 12)
    line("have been permanently retired on behalf of", "", 11, _MUTED, 6)
    line(pdf.user_text(view.account_name), "B", 16, _INK, 8)
    line(f"on {format_issue_date(view.issued_at)}.", "", 11, _MUTED, 6)
    pdf.ln(5)


def _pdf_details(pdf: _CertificatePDF, view: CertificateView) -> None:
    rows = [
        ("Certificate ID", view.certificate_id),
        ("Issue date (UTC)", view.issued_at.astimezone(UTC).date().isoformat()),
        ("Total retired", f"{format_mass(view.mass_grams)} {CO2E}"),
        ("Verify online", pdf.user_text(view.public_url)),
    ]
    pdf.set_text_color(*_INK)
    pdf.set_fill_color(*_PANEL)
    with pdf.table(
        col_widths=(38, 132),
        text_align=("LEFT", "LEFT"),
        first_row_as_headings=False,
        borders_layout=TableBordersLayout.NONE,
        cell_fill_color=_PANEL,
        cell_fill_mode=TableCellFillMode.ALL,
        line_height=4.6,
        padding=(1, 4),
    ) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=FontFace(family=_FONT_FAMILY, emphasis="BOLD", size_pt=8.5))
            row.cell(value, style=FontFace(family=_FONT_FAMILY, size_pt=8.5))
    pdf.ln(5)


def _pdf_section_heading(pdf: _CertificatePDF, text: str) -> None:
    pdf.set_font(_FONT_FAMILY, "B", 11)
    pdf.set_text_color(*_BRAND)
    pdf.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*_INK)


def _pdf_description(pdf: _CertificatePDF, description: str) -> None:
    _pdf_section_heading(pdf, "Description")
    pdf.set_font(_FONT_FAMILY, "", 10)
    pdf.multi_cell(0, 5.2, pdf.user_text(description, keep_newlines=True), align=Align.L)
    pdf.ln(5)


def _pdf_projects(pdf: _CertificatePDF, view: CertificateView) -> None:
    _pdf_section_heading(pdf, "Retired credits")
    pdf.set_font(_FONT_FAMILY, "", 8.5)
    pdf.set_draw_color(206, 212, 218)
    pdf.set_line_width(0.2)
    pdf.set_fill_color(*_STRIPE)
    with pdf.table(
        col_widths=_TABLE_COLUMN_WIDTHS,
        text_align=_TABLE_ALIGN,
        v_align=VAlign.T,
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(
            family=_FONT_FAMILY, emphasis="BOLD", color=(255, 255, 255), fill_color=_BRAND
        ),
        cell_fill_color=_STRIPE,
        cell_fill_mode=TableCellFillMode.EVEN_ROWS,
        line_height=4.4,
        padding=(1.6, 1.8),
        repeat_headings=1,
    ) as table:
        heading = table.row()
        for title in _TABLE_HEADINGS:
            heading.cell(title)
        for project in view.projects:
            row = table.row()
            name_and_type = f"{project.name}\n{project.project_type}"
            registry_and_id = f"{project.registry}\n{project.registry_id}"
            row.cell(pdf.user_text(name_and_type, keep_newlines=True))
            row.cell(pdf.user_text(registry_and_id, keep_newlines=True))
            row.cell(pdf.user_text(project.country))
            row.cell(str(project.vintage))
            row.cell(pdf.user_text(project.serial_range))
            row.cell(format_mass(project.mass_grams))
        total = table.row(style=FontFace(family=_FONT_FAMILY, emphasis="BOLD"))
        total.cell("Total", colspan=5)
        total.cell(format_mass(view.mass_grams))
    pdf.ln(4)


def _pdf_closing_note(pdf: _CertificatePDF, view: CertificateView) -> None:
    pdf.set_font(_FONT_FAMILY, "", 8.5)
    pdf.set_text_color(*_MUTED)
    note = f"{CLOSING_NOTE} Verify this certificate at {view.public_url}"
    pdf.multi_cell(0, 4.4, pdf.user_text(note), align=Align.L)
    pdf.set_text_color(*_INK)


# -------------------------------------------------------------------------------------- HTML


def _e(text: str, *, keep_newlines: bool = False) -> str:
    return html.escape(_clean_user_text(text, keep_newlines=keep_newlines), quote=True)


def _html_rows(projects: Iterable[CertificateProject]) -> str:
    rows = []
    for project in projects:
        rows.append(
            "<tr>"
            f'<td><bdi class="strong">{_e(project.name)}</bdi>'
            f'<span class="sub">{_e(project.project_type)}</span></td>'
            f'<td><bdi>{_e(project.registry)}</bdi><span class="sub">'
            f"<bdi>{_e(project.registry_id)}</bdi></span></td>"
            f"<td><bdi>{_e(project.country)}</bdi></td>"
            f'<td class="num">{project.vintage}</td>'
            f'<td class="serial"><bdi>{_e(project.serial_range)}</bdi></td>'
            f'<td class="num">{format_mass(project.mass_grams)}</td>'
            "</tr>"
        )
    return "\n".join(rows)


def render_certificate_html(view: CertificateView) -> str:
    """The certificate as a standalone, accessible HTML5 page: inline CSS, no scripts, no
    external assets, every user-supplied string escaped."""
    mass = f"{format_mass(view.mass_grams)} {CO2E}"
    issued_utc = view.issued_at.astimezone(UTC)
    issued_iso = issued_utc.isoformat().replace("+00:00", "Z")
    pdf_url = html.escape(view.pdf_url, quote=True)
    public_url = html.escape(view.public_url, quote=True)
    certificate_id = html.escape(view.certificate_id)
    test_banner = (
        '<div class="test-banner" role="note">'
        f"<strong>{TEST_BANNER}</strong><span>{TEST_EXPLANATION}</span></div>"
        if view.is_test
        else ""
    )
    description = ""
    if view.description and _clean_user_text(view.description):
        description = (
            '<section aria-labelledby="description-heading">'
            '<h2 id="description-heading">Description</h2>'
            f'<p class="description"><bdi>{_e(view.description, keep_newlines=True)}</bdi></p>'
            "</section>"
        )
    page_title = f"{'[TEST] ' if view.is_test else ''}{TITLE} {certificate_id} · {ISSUER}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{page_title}</title>
<style>{_CSS}</style>
</head>
<body class="{"test" if view.is_test else "live"}">
<main class="certificate">
{test_banner}
<header>
<p class="issuer">{ISSUER}</p>
<h1>{TITLE}</h1>
</header>
<p class="statement">This certifies that carbon credits equivalent to
<strong class="mass">{mass}</strong>
have been permanently retired on behalf of
<strong class="account"><bdi>{_e(view.account_name)}</bdi></strong>
on <time datetime="{issued_iso}">{format_issue_date(view.issued_at)}</time>.</p>
<dl class="details">
<div><dt>Certificate ID</dt><dd><code>{certificate_id}</code></dd></div>
<div><dt>Issue date (UTC)</dt><dd>{issued_utc.date().isoformat()}</dd></div>
<div><dt>Total retired</dt><dd>{mass}</dd></div>
<div><dt>Verify online</dt><dd><a href="{public_url}">{public_url}</a></dd></div>
</dl>
<p class="actions"><a class="button" href="{pdf_url}" type="application/pdf">Download PDF</a></p>
{description}
<section aria-labelledby="credits-heading">
<h2 id="credits-heading">Retired credits</h2>
<div class="table-scroll" role="region" aria-labelledby="credits-heading" tabindex="0">
<table>
<thead><tr><th scope="col">Project</th><th scope="col">Registry</th><th scope="col">Country</th>
<th scope="col" class="num">Vintage</th><th scope="col">Serial range</th>
<th scope="col" class="num">Mass</th></tr></thead>
<tbody>
{_html_rows(view.projects)}
</tbody>
<tfoot><tr><th scope="row" colspan="5">Total</th>
<td class="num">{format_mass(view.mass_grams)}</td></tr></tfoot>
</table>
</div>
</section>
<footer>
<p>{CLOSING_NOTE}</p>
<p>Certificate <code>{certificate_id}</code> · issued by {ISSUER}</p>
</footer>
</main>
</body>
</html>
"""


_CSS = """
:root { color-scheme: light; --ink: #212529; --muted: #5c636a; --brand: #166534;
  --brand-soft: #f0f7f2; --alert: #b91c1c; --rule: #ced4da; }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem 1rem; background: #eef1ef; color: var(--ink);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  "Noto Sans", sans-serif; }
.certificate { max-width: 60rem; margin: 0 auto; background: #fff; padding: 2.5rem 3rem;
  border: 3px double var(--brand); outline: 1px solid var(--brand); outline-offset: 6px;
  box-shadow: 0 2px 12px rgba(0, 0, 0, .08); overflow-wrap: break-word; }
body.test .certificate { background-image: repeating-linear-gradient(-45deg, transparent 0
  9rem, rgba(185, 28, 28, .035) 9rem 18rem); }
.test-banner { display: flex; flex-direction: column; align-items: center; gap: .15rem;
  margin: 0 0 2rem; padding: .75rem 1rem; background: var(--alert); color: #fff;
  text-align: center; border-radius: 4px; }
.test-banner strong { font-size: 1.25rem; letter-spacing: .04em; }
header { text-align: center; }
.issuer { margin: 0; color: var(--brand); font-weight: 700; font-size: .8rem;
  letter-spacing: .2em; text-transform: uppercase; }
h1 { margin: .4rem 0 1.5rem; font-size: clamp(1.5rem, 4vw, 2.1rem); line-height: 1.2; }
h1::after { content: ""; display: block; width: 6rem; height: 2px; margin: 1rem auto 0;
  background: var(--brand); }
.statement { text-align: center; color: var(--muted); font-size: 1.05rem; margin: 0 0 2rem; }
.statement strong { display: block; color: var(--ink); margin: .35rem 0; }
.statement .mass { color: var(--brand); font-size: 2.4rem; line-height: 1.15; }
.statement .account { font-size: 1.5rem; }
.details { margin: 0 0 1.25rem; padding: .75rem 1.25rem; background: var(--brand-soft);
  border-radius: 4px; }
.details div { display: grid; grid-template-columns: 11rem 1fr; gap: 1rem; padding: .3rem 0; }
.details dt { font-size: .8rem; font-weight: 700; color: var(--muted); text-transform: uppercase;
  letter-spacing: .05em; line-height: 1.9; }
.details dd { margin: 0; min-width: 0; }
code { font: .95em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
a { color: var(--brand); }
.actions { margin: 0 0 2rem; text-align: center; }
.button { display: inline-block; padding: .55rem 1.25rem; border-radius: 4px;
  background: var(--brand); color: #fff; font-weight: 600; text-decoration: none; }
.button:hover, .button:focus-visible { background: #14532d; text-decoration: underline; }
a:focus-visible, .table-scroll:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
h2 { font-size: 1.15rem; color: var(--brand); margin: 0 0 .5rem; }
section { margin: 0 0 2rem; }
.description { margin: 0; white-space: pre-line; }
.table-scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th, td { padding: .5rem .6rem; text-align: left; vertical-align: top;
  border-bottom: 1px solid var(--rule); }
thead th { background: var(--brand); color: #fff; border-bottom: 0; }
tbody tr:nth-child(even) { background: #f7f9f8; }
tfoot th, tfoot td { font-weight: 700; border-bottom: 0; border-top: 2px solid var(--brand); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.strong { font-weight: 600; }
.sub { display: block; color: var(--muted); font-size: .85em; }
.serial { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .82rem; }
footer { border-top: 1px solid var(--rule); padding-top: 1rem; color: var(--muted);
  font-size: .85rem; }
footer p { margin: .25rem 0; }
@media (max-width: 40rem) { .certificate { padding: 1.5rem 1.1rem; }
  .details div { grid-template-columns: 1fr; gap: 0; } }
@media print { body { background: #fff; padding: 0; } .certificate { box-shadow: none; }
  .actions { display: none; } }
"""
