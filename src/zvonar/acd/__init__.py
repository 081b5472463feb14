"""Automatic call distribution: agent state machine, queues, strategies and queue facts.

Everything under ``zvonar.acd`` except ``models``/``service`` is pure: time comes in as ``now``
(float seconds; epoch seconds in production, a virtual clock in tests), events come out as frozen
dataclasses, and nothing reads a clock, sleeps or does I/O. The async code around it only feeds
inputs, arms a timer at ``next_deadline()`` and acts on the offers and events it gets back.
"""
