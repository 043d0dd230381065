"""A local amoCRM (API v4, OAuth, webhooks) for development and end-to-end tests. Never deployed."""
