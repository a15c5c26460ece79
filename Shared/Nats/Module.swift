// Module Nats.
