"""The certificate's PDF and HTML renderings and the mass formatting they share."""

import dataclasses
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from pypdf import PdfReader

from app.accounts.models import Mode
from app.certificates.render import (
    TEST_BANNER,
    CertificateProject,
    CertificateView,
    format_issue_date,
    format_mass,
    render_certificate_html,
    render_certificate_pdf,
)

CERTIFICATE_ID = "5f532c7a17c70aa80fd95248604b760c"
PUBLIC_URL = f"https://gateway.example.com/certificates/{CERTIFICATE_ID}"
ISSUED_AT = datetime(2025, 3, 12, 23, 30, tzinfo=UTC)


def make_project(index: int = 1, **overrides: object) -> CertificateProject:
    fields: dict[str, object] = {
        "name": f"Kasigau Corridor {index}",
        "project_type": "Forest conservation",
        "registry": "Verra",
        "registry_id": f"VCS-{600 + index}",
        "country": "Kenya",
        "vintage": 2020,
        "serial_range": f"KC-2020-{index:04d}01-{index:04d}99",
        "mass_grams": 1_000_000,
    }
    fields.update(overrides)
    return CertificateProject(**fields)  # type: ignore[arg-type]


def make_view(**overrides: object) -> CertificateView:
    projects = overrides.pop("projects", [make_project(1), make_project(2, mass_grams=250_000)])
    assert isinstance(projects, list)
    fields: dict[str, object] = {
        "certificate_id": CERTIFICATE_ID,
        "issued_at": ISSUED_AT,
        "account_name": "Acme Logistics GmbH",
        "mode": "LIVE",
        "mass_grams": sum(project.mass_grams for project in projects),
        "description": "Offsetting our Q1 freight between Hamburg and Rotterdam.",
        "projects": projects,
        "public_url": PUBLIC_URL,
    }
    fields.update(overrides)
    return CertificateView(**fields)  # type: ignore[arg-type]


def pdf_pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def without_whitespace(text: str) -> str:
    # Table cells wrap long serial ranges over several lines.
    return re.sub(r"\s+", "", text)


# ------------------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("grams", "expected"),
    [
        (0, "0 kg"),
        (1, "0.001 kg"),
        (999, "0.999 kg"),
        (1_000, "1 kg"),
        (1_500, "1.5 kg"),
        (750_000, "750 kg"),
        (999_999, "999.999 kg"),
        (1_000_000, "1 t"),
        (1_000_001, "1.000001 t"),
        (1_250_000, "1.25 t"),
        (10_000_000, "10 t"),
        (12_345_678_000, "12,345.678 t"),
        (10**24 + 1, "1,000,000,000,000,000,000.000001 t"),
    ],
)
def test_mass_is_kg_below_a_tonne_and_tonnes_above_exactly(grams: int, expected: str) -> None:
    assert format_mass(grams) == expected


def test_negative_mass_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_mass(-1)


def test_issue_date_is_the_utc_calendar_date() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert format_issue_date(datetime(2025, 3, 13, 8, 30, tzinfo=tokyo)) == "12 March 2025"
    assert format_issue_date(datetime(2025, 1, 1, tzinfo=UTC)) == "1 January 2025"


def test_view_refuses_naive_issue_time_and_unknown_mode() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_view(issued_at=datetime(2025, 3, 12, 12, 0))
    with pytest.raises(ValueError, match="mode"):
        make_view(mode="SANDBOX")


def test_view_accepts_the_account_mode_enum() -> None:
    assert make_view(mode=Mode.TEST).is_test
    assert not make_view(mode=Mode.LIVE).is_test


# ------------------------------------------------------------------------------------- PDF


def test_pdf_is_a_complete_pdf_document() -> None:
    pdf = render_certificate_pdf(make_view())
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")


def test_pdf_shows_id_account_mass_date_and_every_serial_range() -> None:
    view = make_view()
    text = "\n".join(pdf_pages_text(render_certificate_pdf(view)))
    assert CERTIFICATE_ID in text
    assert "Acme Logistics GmbH" in text
    assert "1.25 t CO₂e" in text
    assert "12 March 2025" in text
    assert "Offsetting our Q1 freight" in text
    for project in view.projects:
        assert project.serial_range in without_whitespace(text)
        assert project.registry_id in text


def test_pdf_says_test_only_for_test_mode() -> None:
    test_text = " ".join(pdf_pages_text(render_certificate_pdf(make_view(mode="TEST"))))
    live_text = " ".join(pdf_pages_text(render_certificate_pdf(make_view(mode="LIVE"))))
    assert TEST_BANNER in test_text
    assert "TEST" not in live_text


def test_pdf_metadata_and_bytes_are_fixed_by_the_view() -> None:
    view = make_view()
    pdf = render_certificate_pdf(view)
    metadata = PdfReader(io.BytesIO(pdf)).metadata
    assert metadata is not None
    assert metadata.title is not None
    assert CERTIFICATE_ID in metadata.title
    assert metadata.creation_date == ISSUED_AT
    assert render_certificate_pdf(view) == pdf


def test_many_projects_break_across_pages_repeating_the_table_header() -> None:
    view = make_view(projects=[make_project(index) for index in range(40)])
    pages = pdf_pages_text(render_certificate_pdf(view))
    assert len(pages) > 1
    for page_number, page in enumerate(pages, start=1):
        assert CERTIFICATE_ID in page
        assert f"Page {page_number} of {len(pages)}" in page
    table_pages = [page for page in pages if "Kasigau Corridor" in page]
    assert len(table_pages) > 1
    assert all("Serial range" in page for page in table_pages)
    all_text = without_whitespace("".join(pages))
    for project in view.projects:
        assert project.serial_range in all_text


def test_pdf_draws_what_its_font_can_and_replaces_the_rest() -> None:
    unicode_text = "Café — 東京 ✓ Łódź Москва"
    view = make_view(
        account_name=unicode_text,
        description=f"{unicode_text} 🌍\u202e reversed?\x00",
        projects=[make_project(1, name=unicode_text, country="Côte d\u2019Ivoire")],
    )
    text = "\n".join(pdf_pages_text(render_certificate_pdf(view)))
    assert "Café — ?? ✓ Łódź Москва" in text
    assert "Côted\u2019Ivoire" in without_whitespace(text)
    assert "東京" not in text


def test_long_description_and_unbroken_words_wrap_without_crashing() -> None:
    long_word = "x" * 600
    description = ("Long description with many words. " * 200) + long_word
    pdf = render_certificate_pdf(
        make_view(description=description, account_name="A" * 300, projects=[make_project(1)])
    )
    text = without_whitespace("\n".join(pdf_pages_text(pdf)))
    assert long_word in text
    assert "A" * 300 in text


def test_pdf_without_description_has_no_description_section() -> None:
    text = "\n".join(pdf_pages_text(render_certificate_pdf(make_view(description=None))))
    assert "Description" not in text


# ------------------------------------------------------------------------------------ HTML


class _TagBalance(HTMLParser):
    """Records tags so a test can check the page is well nested and script-free."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attributes.extend(attrs)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag


def parse(page: str) -> _TagBalance:
    parser = _TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    return parser


def test_html_is_a_standalone_noindexed_page_with_the_certificate() -> None:
    view = make_view()
    page = render_certificate_html(view)
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    assert '<meta name="robots" content="noindex">' in page
    assert f'href="{PUBLIC_URL}.pdf"' in page
    assert CERTIFICATE_ID in page
    assert "1.25 t CO₂e" in page
    assert "12 March 2025" in page
    for project in view.projects:
        assert project.serial_range in page
        assert project.registry_id in page
    assert "script" not in parsed.seen
    assert "link" not in parsed.seen
    assert not any(name == "src" or name.startswith("on") for name, _ in parsed.attributes)
    assert "TEST" not in page


def test_html_shows_the_test_banner_in_test_mode() -> None:
    page = render_certificate_html(make_view(mode="TEST"))
    assert TEST_BANNER in page
    assert 'role="note"' in page


def test_html_escapes_every_user_supplied_string() -> None:
    attack = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    view = make_view(
        account_name=attack,
        description=attack,
        projects=[
            make_project(
                1,
                name=attack,
                project_type=attack,
                registry=attack,
                registry_id=attack,
                country=attack,
                serial_range=attack,
            )
        ],
    )
    page = render_certificate_html(view)
    parsed = parse(page)
    assert "<script" not in page
    assert "<img" not in page
    assert "script" not in parsed.seen
    assert "img" not in parsed.seen
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 8


def test_html_escapes_the_public_url_in_attributes() -> None:
    page = render_certificate_html(make_view(public_url='https://x.example/c/"onmouseover="x'))
    assert 'href="https://x.example/c/&quot;onmouseover=&quot;x.pdf"' in page
    assert not any(name.startswith("on") for name, _ in parse(page).attributes)


def test_html_keeps_unicode_and_description_line_breaks_but_drops_control_characters() -> None:
    page = render_certificate_html(
        make_view(account_name="Café — 東京 ✓", description="First line\nSecond\x00 line\u202e")
    )
    assert "Café — 東京 ✓" in page
    assert "First line\nSecond line</bdi>" in page


def test_lone_surrogates_from_json_input_cannot_break_either_rendering() -> None:
    view = make_view(account_name="Broken \ud800 name", description="Also \udfff broken")
    page = render_certificate_html(view).encode("utf-8")
    assert b"Broken  name" in page
    assert render_certificate_pdf(view).startswith(b"%PDF-")


def test_html_without_description_has_no_description_section() -> None:
    assert "Description" not in render_certificate_html(make_view(description=None))


def test_views_are_immutable() -> None:
    view = make_view()
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.account_name = "Someone else"  # type: ignore[misc]
