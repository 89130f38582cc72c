"""crm-api: an API-first, headless CRM backend."""

__version__ = "0.1.0"
