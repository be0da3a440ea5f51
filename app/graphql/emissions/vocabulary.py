"""The calculators' closed vocabularies as GraphQL enums, so clients get autocompletion, types
from codegen and errors at validation rather than at run time.

Enums may gain values (DESNZ publishes new vehicle types, fuels and modes): clients must treat
a value they do not know as "other", never crash on it."""

import strawberry

from app.emissions import calculators

VehicleType = strawberry.enum(
    calculators.VehicleType,
    name="VehicleType",
    description="A road or rail vehicle of DESNZ's passenger transport factors.",
)
Fuel = strawberry.enum(
    calculators.Fuel, name="Fuel", description="What a car runs on; UNKNOWN takes the average."
)
CabinClass = strawberry.enum(
    calculators.CabinClass,
    name="CabinClass",
    description="A flight's seat class, as DESNZ publishes it for the leg's haul band.",
)
FreightMode = strawberry.enum(
    calculators.FreightMode, name="FreightMode", description="How a freight leg travels."
)
