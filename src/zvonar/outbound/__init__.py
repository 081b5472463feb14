"""Outbound calls from extensions: dial plan, trunk and caller-ID selection, toll-fraud guard."""
