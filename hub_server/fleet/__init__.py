"""The fleet: devices, their provisioning and broker accounts, config pushes, setup access, alarms, the register.

``devices`` adds and revokes devices, ``broker_accounts``/``dynsec``/``provisioning_files`` change the broker's
accounts, ``broker`` runs a private Mosquitto (demo, tests, benchmarks), ``device_config`` pushes configs,
``device_setup`` opens a device's setup page, ``alarms`` raises and clears alarms, ``register`` publishes the
sensor register.
"""
