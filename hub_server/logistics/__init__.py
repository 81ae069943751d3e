"""Locker logistics: deliveries and shares, locker codes, resident notifications, and their wiring into the app.

``service`` holds the ``Logistics`` service, ``models`` its vocabulary and allocation, ``codes`` the code
generator and hashes, ``notifications`` the notifier interface and webhook, ``wiring`` the app keys and loops.
"""
