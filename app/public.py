"""Keyless public pages: certificates as HTML and PDF, by unguessable id."""

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


class CertificatePages:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

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
            render_certificate_pdf(view),
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
