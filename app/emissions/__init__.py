"""Emission estimates: published factor datasets and the calculators that apply them."""
