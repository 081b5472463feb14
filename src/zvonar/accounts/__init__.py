"""Accounts (tenants), users with roles, API tokens and web sessions."""
