"""Notifications: e-mail (``mailer``) and the missed-call notifier, fed by call events."""
