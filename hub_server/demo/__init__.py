"""The field lab in a box: ``lab`` runs broker, hub and simulated agents, ``agents`` the agent processes,
``world`` the street's configs and the people using the lockers."""
