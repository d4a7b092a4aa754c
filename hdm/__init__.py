"""hdm: hierarchical dynamics (HDM, ACM MM 2022) and related image-enhancement systems."""
__version__ = "0.1.0"
