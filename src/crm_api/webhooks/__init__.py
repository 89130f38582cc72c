"""Events (the outbox and its feed) and webhooks: endpoints, deliveries, the dispatcher."""
