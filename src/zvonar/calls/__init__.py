"""Call control: a call joins legs (the B2BUA). :mod:`zvonar.calls.events` is its neutral event
vocabulary, which the journal, reports, webhooks and the UI consume (DESIGN.md style rule 9)."""
