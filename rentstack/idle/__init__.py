"""Idle stop: stop the server (and optionally power the rental off) when nobody uses it.

watchdog.py holds the pure decision core and the loop that acts on it. It is one
standard-library file on purpose: it runs where rentstack is not installed, mounted into
the compose service `idle-stop` (the debootstrap'ed base image) or copied next to the
native runner's supervisor on the host.
"""
