"""Countries as clients write them, normalised once for the whole code base to ISO 3166-1
alpha-2 (catalog projects, grid electricity, products' use-phase grid)."""

import pycountry

from app.errors import InvalidInput

# "UK" is ISO's exceptionally reserved code for the United Kingdom, and what people type.
_ALIASES = {"UK": "GB"}


def country_alpha2(country_code: str, field: str = "countryCode") -> str:
    """An ISO 3166-1 alpha-2 or alpha-3 code (any case, `UK` for GB) as alpha-2, else
    InvalidInput."""
    code = country_code.strip().upper()
    code = _ALIASES.get(code, code)
    country = None
    if len(code) == 2 and code.isascii() and code.isalpha():
        country = pycountry.countries.get(alpha_2=code)
    elif len(code) == 3 and code.isascii() and code.isalpha():
        country = pycountry.countries.get(alpha_3=code)
    if country is None:
        raise InvalidInput(f"{country_code[:16]!r} is not an ISO 3166-1 country code.", field)
    return str(country.alpha_2)
