"""Reading a certificate: a fulfilled order's retirement, by its public id."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Account
from app.catalog.models import CreditBatch, Project
from app.certificates.ids import is_well_formed_certificate_id
from app.certificates.render import CertificateProject, CertificateView
from app.offsets.models import Allocation, OffsetOrder, OrderState
from app.offsets.service import serial_range


async def load_certificate(
    session: AsyncSession, certificate_id: str, public_url: str
) -> CertificateView | None:
    """The certificate with this id, or None for unknown ids and orders not fulfilled.

    Public and keyless by design: the id is unguessable, and nothing private (metadata,
    callback URL, prices) is shown."""
    if not is_well_formed_certificate_id(certificate_id):
        return None
    row = (
        await session.exec(
            select(OffsetOrder, Account)
            .join(Account, col(Account.id) == col(OffsetOrder.account_id))
            .where(
                OffsetOrder.certificate_id == certificate_id,
                OffsetOrder.state == OrderState.FULFILLED,
            )
        )
    ).first()
    if row is None:
        return None
    order, account = row
    allocations = (
        await session.exec(
            select(Allocation, Project, CreditBatch)
            .join(Project, col(Project.id) == col(Allocation.project_id))
            .join(CreditBatch, col(CreditBatch.id) == col(Allocation.credit_batch_id))
            .where(Allocation.order_id == order.id)
            .order_by(col(Allocation.created_at), col(Allocation.serial_start))
        )
    ).all()
    assert order.fulfilled_at is not None
    return CertificateView(
        certificate_id=certificate_id,
        issued_at=order.fulfilled_at,
        account_name=account.name,
        mode=order.mode.value,
        mass_grams=order.mass_grams,
        description=order.description,
        projects=[
            CertificateProject(
                name=project.name,
                project_type=project.project_type.value.replace("_", " ").title(),
                registry=project.registry_name,
                registry_id=project.registry_id,
                country=project.country,
                vintage=batch.vintage,
                serial_range=serial_range(
                    batch.serial_prefix, allocation.serial_start, allocation.serial_end
                ),
                mass_grams=allocation.mass_grams,
            )
            for allocation, project, batch in allocations
        ],
        public_url=public_url,
    )
