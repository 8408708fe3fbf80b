"""An offline, cited customer-support assistant over a store's own FAQ/policy text."""

__version__ = "0.1.0"
