"""Keyless public pages: certificates as HTML and PDF, by unguessable id."""

import asyncio
from collections import OrderedDict

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from app.certificates.render import (
    CertificateView,
    render_certificate_html,
    render_certificate_pdf,
)
from app.certificates.service import load_certificate
from app.config import Settings
from app.db import Database

NOT_FOUND = "No such certificate."
PDF_CACHE_SIZE = 256


class CertificatePages:
    """A fulfilled order's certificate never changes, so rendered PDFs are kept (a PDF costs
    ~0.2 s of CPU, most of it parsing the font) and rendered off the event loop."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._pdfs: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    async def _pdf_bytes(self, view: CertificateView) -> bytes:
        key = (view.certificate_id, view.public_url)  # the page URL is printed on it
        cached = self._pdfs.get(key)
        if cached is not None:
            self._pdfs.move_to_end(key)
            return cached
        rendered = await asyncio.to_thread(render_certificate_pdf, view)
        self._pdfs[key] = rendered
        if len(self._pdfs) > PDF_CACHE_SIZE:
            self._pdfs.popitem(last=False)
        return rendered

    async def html(self, request: Request) -> Response:
        certificate_id: str = request.path_params["certificate_id"]
        view = await self._load(request, certificate_id)
        if view is None:
            return PlainTextResponse(NOT_FOUND, status_code=404)
        return HTMLResponse(
            render_certificate_html(view), headers={"Cache-Control": "public, max-age=300"}
        )

    async def pdf(self, request: Request) -> Response:
        certificate_id: str = request.path_params["certificate_id"]
        view = await self._load(request, certificate_id)
        if view is None:
            return PlainTextResponse(NOT_FOUND, status_code=404)
        return Response(
            await self._pdf_bytes(view),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="certificate-{certificate_id}.pdf"',
                "Cache-Control": "public, max-age=300",
            },
        )

    async def _load(self, request: Request, certificate_id: str) -> CertificateView | None:
        page = self.settings.public_link(str(request.base_url), f"/certificates/{certificate_id}")
        async with self.db.session() as session:
            return await load_certificate(session, certificate_id, page)
