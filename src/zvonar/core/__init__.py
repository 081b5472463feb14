"""Cross-cutting building blocks every domain slice uses: errors, events, the bus, ids, clock."""
