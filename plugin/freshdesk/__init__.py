"""Freshdesk: authenticated automation-rule webhooks, the API v2 client, provisioning."""
