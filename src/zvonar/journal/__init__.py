"""The call journal: one record per call with its legs, timings, disposition and recording,
written from the call events (``zvonar.calls.events``) and read through the REST API."""
