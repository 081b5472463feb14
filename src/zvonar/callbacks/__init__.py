"""Callback requests: "call me back" by API; the PBX calls the right people, then the customer."""
