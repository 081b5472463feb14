"""Outbound integrations: the HTTP route client (the customer's back office routes a call)."""
