"""Zendesk: webhook verification and parsing (pure), API client, provisioning."""
