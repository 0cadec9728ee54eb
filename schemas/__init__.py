"""Event contracts shared by every service: the only code services share besides the runtime."""
