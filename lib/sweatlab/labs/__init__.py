"""One package per lab: its checks, stand-ins and record."""
