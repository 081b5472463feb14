"""Contacts: the account's directory of callers (suppliers, partners, VIPs) for caller rules."""
