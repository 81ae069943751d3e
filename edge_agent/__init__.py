"""The edge agent: flow counting, the locker bank and reliable reporting, on a Raspberry Pi."""

__version__ = "0.1.0"
