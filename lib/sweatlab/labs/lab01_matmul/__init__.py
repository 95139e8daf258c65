"""Lab 01's kit: its checks (and, as the kit grows, its stand-ins and record)."""
