"""Running the agent as a service: systemd notification, self-check, config push and migration."""
