"""Locker logistics: deliveries and shares, locker codes, resident notifications, and their wiring into the app.

``service`` holds the ``Logistics`` service, built by job: ``lockers`` (compartments, operator actions,
commands to the devices and their answers), ``locker_codes`` (link tokens, sealed pickup codes, return codes),
``messages`` (notifications to residents), ``deliveries`` (booking, status, expiry). ``models`` is the domain's
vocabulary and allocation, ``codes`` the code generator and hashes, ``notifications`` the notifier interface
and webhook, ``wiring`` the background loops and command path.
"""
