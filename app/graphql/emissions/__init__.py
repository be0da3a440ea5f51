"""Emissions in the graph: estimates, the product catalog and customer orders."""

from strawberry.tools import merge_types

from app.graphql.emissions.customer_orders import CustomerOrderMutations, CustomerOrderQueries
from app.graphql.emissions.estimates import EstimateMutations, EstimateQueries
from app.graphql.emissions.products import ProductMutations, ProductQueries

EmissionQueries = merge_types(
    "EmissionQueries", (EstimateQueries, ProductQueries, CustomerOrderQueries)
)
EmissionMutations = merge_types(
    "EmissionMutations", (EstimateMutations, ProductMutations, CustomerOrderMutations)
)

__all__ = ["EmissionMutations", "EmissionQueries"]
