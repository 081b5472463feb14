"""The browser UI: server-rendered Jinja2 pages with htmx, served next to the API."""
