"""An account's own voice prompts (greetings, hold music) overriding the defaults."""
