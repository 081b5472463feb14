"""Forwarding schemes: schedules, ring strategies and the sans-IO step-chain interpreter."""
