"""The touchscreen page at the locker bank: type a code, find the blinking compartment, close the door."""
