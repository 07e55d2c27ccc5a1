"""CareRoute: crisis-aware triage for Zendesk and Freshdesk tickets."""

__version__ = "0.1.0"
