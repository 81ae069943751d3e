"""The hub's locker bank on gpiozero: wiring, compartment states, offline codes, keypad, kiosk and alarms.

``edge_agent.lockers.bank.LockerBank`` is the one entry point; see docs/lockers.md.
"""
