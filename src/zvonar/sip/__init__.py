"""Sans-IO SIP stack (RFC 3261): message layer, transactions, dialogs, auth, registrar.

See docs/sip-contract.md for the module contract.
"""
